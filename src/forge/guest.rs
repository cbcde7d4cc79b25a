//! Guest disks: a partition table and a real guest file system made by the system tools.
