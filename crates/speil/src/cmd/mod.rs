//! One module per subcommand.

pub(crate) mod demo;
pub(crate) mod run;
pub(crate) mod version;
