//! Schemas of the `/v1` document that no Rust type derives: shared by the handlers that use
//! them and by the document (kept apart from both, so neither imports the other for it).

use serde_json::json;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Schema,
        schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type},
    },
};

/// `"all"`, or a list of permissions: the shape of every `permissions` field.
pub struct PermissionsSchema;

impl PartialSchema for PermissionsSchema {
    fn schema() -> RefOr<Schema> {
        let all = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["all"]))
            .description(Some("Every permission, including any added later."));
        let permission = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["inference", "keys:read", "keys:write"]));
        let restricted =
            ArrayBuilder::new().items(permission).unique_items(true).description(Some("Only these permissions (may be empty)."));
        OneOfBuilder::new()
            .item(all)
            .item(restricted)
            .description(Some("`\"all\"`, or a list of `inference`, `keys:read`, `keys:write`."))
            .examples([json!("all"), json!(["inference"])])
            .into()
    }
}

impl ToSchema for PermissionsSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Permissions".into()
    }
}
