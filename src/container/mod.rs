//! Containers: partition tables, lost-partition probe and VMware LVM.
