//! Reusable pieces of the portal, one non-trivial component per file.

pub mod copy_once_modal;
pub mod create_key_dialog;
pub mod dialog;
pub mod edit_key_dialog;
pub mod icons;
pub mod key_fields;
pub mod key_format;
pub mod key_table;
pub mod layout;
pub mod revoke_key_dialog;
pub mod roll_key_dialog;
pub mod usage_chart;
