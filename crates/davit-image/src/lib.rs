//! Build once, look inside, decide, and only then push exactly what was scanned.
//!
//! `davit-image` is the image step of a davit pipeline. It builds the image (`docker buildx
//! build` when the plugin exists, the classic builder otherwise), computes tags and OCI labels
//! the way docker/metadata-action does ([`meta`]), exports the built image and reads its layers
//! to produce an SBOM ([`sbom`]), matches that inventory against an offline OSV database
//! ([`osv`], with per-ecosystem ordering in [`version`]; downloaded and cached by [`osv_fetch`]
//! when no database is given) or Trivy ([`trivy`]), applies the
//! policy ([`policy`]), writes SARIF, JSON and a markdown summary ([`report`]), and pushes only
//! when the policy passed, checking that the registry now holds the very image that was scanned
//! ([`docker`]). The pieces that decide (ordering, matching, policy, tags) are pure and tested
//! without Docker; the pieces that touch Docker are thin.

pub mod context_check;
pub mod docker;
pub mod finding;
pub mod meta;
pub mod osv;
pub mod osv_fetch;
mod pipeline;
pub mod policy;
pub mod report;
pub mod run;
pub mod sbom;
pub mod trivy;
pub mod version;
