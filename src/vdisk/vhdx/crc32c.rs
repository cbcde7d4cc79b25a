//! CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every VHDX header,
//! region table and log entry. A byte-wise table: the checksummed structures are small.

const POLY: u32 = 0x82F6_3B78;

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = table();

/// Continue a CRC-32C over `data` (`crc` = 0 to start).
pub fn update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// CRC-32C of `data` with the 4-byte checksum field at `field` taken as zero.
pub fn with_zeroed_field(data: &[u8], field: usize) -> u32 {
    let (head, rest) = data.split_at(field.min(data.len()));
    let tail = rest.get(4..).unwrap_or(&[]);
    update(update(update(0, head), &[0; 4][..rest.len().min(4)]), tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // The standard check value, and RFC 3720's 32 zero bytes.
        assert_eq!(update(0, b"123456789"), 0xE306_9283);
        assert_eq!(update(0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(update(update(0, b"1234"), b"56789"), 0xE306_9283);
        let mut b = *b"abcdXXXXefgh";
        let c = with_zeroed_field(&b, 4);
        b[4..8].fill(0);
        assert_eq!(c, update(0, &b));
    }
}
