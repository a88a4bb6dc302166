//! Policy assurance: Ditjen's invariants (`policies/invariants/*.toml`, each naming the
//! regulation article it encodes) proved over every request the Cedar schema allows, with
//! Cedar's symbolic compiler (`cedar-policy-symcc`) and the cvc5 solver; and the semantic
//! difference of an edit, per Pengguna and User ID, with SymCC's equivalence check of the
//! rule files.
//!
//! A crate of its own so that the symbolic compiler (and its solver process handling, big
//! integers and async runtime) stays out of `gerbang-policy`, which the request path, its
//! benches and its unit tests build. Nothing here runs on the request path: `gerbang check`,
//! `gerbang policy verify|diff` and the reload (before a new set is swapped in) call it.
#![forbid(unsafe_code)]

mod counterexample;
mod diff;
mod equivalence;
mod invariant;
mod review;
mod solver;
mod verify;

pub use counterexample::Counterexample;
pub use diff::{AgreementChange, Diff, FieldChange, NetworkChange, Presence, UserChange, diff};
pub use equivalence::{RulesChange, equivalence};
pub use invariant::{
    INVARIANTS_DIR, Invariant, Property, load_invariants, parse as parse_invariants,
};
pub use review::{EQUIVALENCE_BUDGET, PROOF_BUDGET, Proof, RELOAD_DIFF_USERS, Review, review};
pub use solver::{NoSolver, Solver};
pub use verify::{Outcome, REQUEST_SHAPE, Report, Verdict, verify};
