//! The one integration test binary; a module per layer.

mod block;
mod container;
mod damage;
mod device;
mod forge;
mod forge_layout;
mod forge_scenarios;
mod forged_double_indirect;
mod forged_lfb;
mod guest;
mod hw_inventory;
mod net_http;
mod net_nbd;
mod recover_carve;
mod recover_scan;
mod recover_scenarios;
mod tui_pty;
mod tui_screens;
mod util;
mod vdisk;
mod vdisk_chains;
mod vdisk_export;
mod vdisk_formats;
mod vdisk_qcow2;
mod vdisk_vhd;
mod vmfs;
