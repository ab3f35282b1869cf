//! One module per subcommand.

pub(crate) mod cleanup;
pub(crate) mod configure;
pub(crate) mod demo;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod version;
