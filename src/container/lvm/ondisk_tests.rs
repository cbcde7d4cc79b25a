//! Unit tests of the VMware LVM layouts in [`super`]: encode / parse round trips, the
//! table offsets observed on the LVM3, LVM5 and LVM6 samples, and the error kind each broken
//! field gives.

use super::*;

fn uuid(n: u8) -> VmwareUuid {
    VmwareUuid([n; 16])
}

pub(crate) fn header(major: u32) -> LvmDeviceHeader {
    LvmDeviceHeader {
        major,
        minor: 21,
        disk_id: disk_id_with("QM00013             QEMU H"),
        disk_block_size: 512,
        total_bytes: 0x2200_0200,
        num_volumes: 1,
        num_pes: 2,
        last_pe_index: 1,
        generation: 3,
        data_offset: 0x110_0000,
        dev_id: uuid(1),
        init_time_us: 7,
        mod_time_us: 8,
        locked_by: uuid(0),
        locked_when_us: 0,
        unknown_0xba: 0,
        num_pe_maps: 1,
        ext_dev_metadata_offset: 0,
        md_alignment: if major == 6 { 0x1000 } else { 0 },
        num_pes6: 0,
        flags: 0,
    }
}

#[test]
fn header_round_trip() {
    for major in 3..=6 {
        let h = header(major);
        let b = h.encode();
        assert_eq!(LvmDeviceHeader::parse(&b), Ok(h.clone()));
        assert!(h.is_plausible());
        assert_eq!(h.disk_id.id(), "QM00013             QEMU H");
    }
}

#[test]
fn header_broken_fields_give_their_kind() {
    let good = header(5).encode();
    let mut b = good;
    put_u32(&mut b, 0, 0);
    assert_eq!(LvmDeviceHeader::parse(&b), Err(CorruptKind::BadMagic { found: 0 }));
    let mut b = good;
    put_u32(&mut b, 4, 7);
    assert_eq!(LvmDeviceHeader::parse(&b), Err(CorruptKind::UnknownMajor(7)));
    let mut b = good;
    put_u32(&mut b, 4, 2);
    assert_eq!(LvmDeviceHeader::parse(&b), Err(CorruptKind::UnknownMajor(2)));
    let mut b = good;
    put_u32(&mut b, 0xBE, 100_000);
    assert_eq!(
        LvmDeviceHeader::parse(&b),
        Err(CorruptKind::TooManyPeMaps { found: 100_000, max: u64::from(MAX_PE_MAPS) })
    );
    assert_eq!(
        LvmDeviceHeader::parse(&good[..0x80]),
        Err(CorruptKind::TooShort { need: DEV_METADATA_SIZE, have: 0x80 })
    );
    let mut b = header(6).encode();
    put_u32(&mut b, 0xCA, 0x1001);
    assert_eq!(LvmDeviceHeader::parse(&b), Err(CorruptKind::BadMdAlignment(0x1001)));
    put_u32(&mut b, 0xCA, 1 << 24);
    assert_eq!(LvmDeviceHeader::parse(&b), Err(CorruptKind::BadMdAlignment(1 << 24)));
    // LVM5 ignores the field.
    let mut b = header(5).encode();
    put_u32(&mut b, 0xCA, 0x1001);
    assert!(LvmDeviceHeader::parse(&b).is_ok());
}

#[test]
fn lvm6_without_md_alignment_uses_the_default() {
    let mut h = header(6);
    h.md_alignment = 0;
    let h = LvmDeviceHeader::parse(&h.encode()).unwrap();
    assert_eq!(h.effective_md_alignment(), 4096);
    assert_eq!(h.layout(), header(6).layout());
}

#[test]
fn layouts_match_the_observed_offsets() {
    // Absolute device offsets seen on the samples (format reference §2.1).
    let l5 = Layout::new(5, 0);
    assert_eq!(LVM_DEV_HEADER_OFFSET + l5.vol_table, 0x100200);
    assert_eq!(LVM_DEV_HEADER_OFFSET + l5.sd_table.unwrap(), 0x17E200);
    assert_eq!(LVM_DEV_HEADER_OFFSET + l5.pe_bitmap(0), 0x180200);
    assert_eq!(LVM_DEV_HEADER_OFFSET + l5.pe_table(0), 0x180600);
    assert_eq!(l5.pe_bitmap(1), 0x180600, "maps are packed: map 1 of the 64 TiB sample");
    let l6 = Layout::new(6, 0x1000);
    assert_eq!(LVM_DEV_HEADER_OFFSET + l6.vol_table, 0x101000);
    assert_eq!(LVM_DEV_HEADER_OFFSET + l6.sd_table.unwrap(), 0x17F000);
    assert_eq!(LVM_DEV_HEADER_OFFSET + l6.pe_bitmap(0), 0x181000);
    assert_eq!(LVM_DEV_HEADER_OFFSET + l6.pe_table(0), 0x182000);
    assert_eq!(l6.max_volumes, 1);
    let l3 = Layout::new(3, 0);
    assert_eq!(l3.sd_table, None);
    assert_eq!(l3.pe_table(0), l5.pe_table(0));
}

#[test]
fn vol_descriptor_round_trip_and_empty_slot() {
    let d = VolDescriptor {
        logical_size: 0x4000_0000,
        generation: 6,
        state: VolState::Normal,
        name_raw: VolDescriptor::name_field("lvm5-span"),
        lv_uuid: uuid(9),
        snap_id: 1,
        creation_time_us: 5,
        volume_id: 0,
        num_pes: 2,
        first_pe: 2,
        last_pe: 3,
        mod_time_us: 6,
        num_devs: 2,
        consumed_pes: 0,
    };
    let b = d.encode();
    assert_eq!(VolDescriptor::parse(&b), Ok(Some(d.clone())));
    assert_eq!(d.name(), "lvm5-span");
    assert_eq!(d.claimed_range(), Some(0x2000_0000..0x4000_0000));
    assert_eq!(VolDescriptor::parse(&[0u8; 512]), Ok(None));
    assert_eq!(VolDescriptor::parse(&b[..100]), Err(CorruptKind::TooShort { need: 512, have: 100 }));
    let mut odd = d;
    odd.first_pe = 5;
    assert_eq!(odd.claimed_range(), None);
    odd.first_pe = u64::MAX;
    odd.last_pe = u64::MAX;
    assert_eq!(odd.claimed_range(), None);
}

#[test]
fn pe_entry_round_trip() {
    let e = PeEntry {
        used: 1,
        pe_id: 1,
        volume_id: 0,
        p_offset: 0x1110_0000,
        l_offset: 0x1000_0000,
        length: 0x1000_0000,
        version: 1,
    };
    let b = e.encode();
    assert_eq!(PeEntry::parse(&b), Ok(e));
    assert!(e.is_used() && !e.is_blank());
    assert!(PeEntry::parse(&[0u8; 128]).unwrap().is_blank());
    assert_eq!(PeEntry::parse(&b[..0x24]), Err(CorruptKind::TooShort { need: 0x25, have: 0x24 }));
}

#[test]
fn ext_metadata_round_trip_and_breaks() {
    let e = ExtDevMetadata { num_pe_maps: 8, data_offset: 0x1000_0210_0000, next_offset: 0x2000_0210_0000 };
    let b = e.encode();
    assert_eq!(ExtDevMetadata::parse(&b), Ok(e));
    let mut bad = b;
    bad[0] = 0;
    assert_eq!(ExtDevMetadata::parse(&bad), Err(CorruptKind::BadMagic { found: 0xC001_D000 }));
    let mut bad = b;
    put_u32(&mut bad, 4, u32::MAX);
    assert_eq!(
        ExtDevMetadata::parse(&bad),
        Err(CorruptKind::TooManyPeMaps { found: u64::from(u32::MAX), max: u64::from(MAX_PE_MAPS) })
    );
    assert_eq!(ExtDevMetadata::parse(&b[..8]), Err(CorruptKind::TooShort { need: 0x18, have: 8 }));
}

#[test]
fn bitmap_and_sd_table() {
    let bm = [0b0000_0101u8, 0x80];
    assert!(pe_bitmap_bit(&bm, 0) && !pe_bitmap_bit(&bm, 1) && pe_bitmap_bit(&bm, 2));
    assert!(pe_bitmap_bit(&bm, 15) && !pe_bitmap_bit(&bm, 16) && !pe_bitmap_bit(&bm, usize::MAX));
    let mut sd = vec![0u8; 0x2000];
    sd[..3].copy_from_slice(b"one");
    sd[256..259].copy_from_slice(b"two");
    assert_eq!(parse_sd_table(&sd), vec!["one".to_string(), "two".to_string()]);
}
