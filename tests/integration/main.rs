//! The one integration test binary; a module per layer.

mod block;
mod damage;
mod container;
mod forged_double_indirect;
mod util;
mod vmfs;
