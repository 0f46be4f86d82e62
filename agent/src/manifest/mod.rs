//! Manifest stage (DESIGN §3.2): turn the files of the cluster path into validated desired objects, grouped
//! into bundles.
//!
//! Data enters as [`SourceFile`](crate::source::SourceFile)s and leaves as [`Bundle`]s of [`Manifest`]s. Any
//! error fails the whole set: the caller must then apply and prune nothing.

mod budget;
mod bundle;
pub mod contest;
pub mod digest;
pub mod flux;
pub mod ignore;
pub mod layout;
pub mod normalize;
pub mod parse;
pub mod render;
pub mod sops;

pub use bundle::{Bundle, Layout, Manifest, Origin};
