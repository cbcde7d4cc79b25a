//! The one integration test binary; a module per layer.

mod block;
mod util;
