//! The "Create API key" dialog: a name (required, 1–100 characters), permissions (All, or
//! a restricted set), an optional expiry (each choice shows its date), an optional rate
//! limit, the models the key may use and an optional daily token budget. Errors show beside
//! their field; Enter submits; the button shows progress and cannot submit twice.

use leptos::{ev::SubmitEvent, prelude::*};

use crate::{
    app::{
        components::{
            dialog::Modal,
            key_fields::{ModelPicker, SELECT_CLASS, TokenBudgetField, input_class, read_budget, read_models},
            key_format::{EXPIRY_CHOICES, expiry_choice_label, plain_message},
        },
        server_fns::CreateApiKey,
    },
    permissions::{Permission, Permissions},
    wire::{CreateApiKeyRequest, PortalError},
};

/// Reads the optional rate limit: empty is the server's default.
pub fn parse_rate_limit(raw: &str) -> Result<Option<u32>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err("Enter a whole number of requests a minute (at least 1), or leave it empty for the server's default.".into()),
    }
}

/// Checks a name as the server will (trimmed, 1–100 characters, no control characters).
pub fn validate_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 {
        Err("Enter a name for the key, such as \"CI/CD Pipeline\".".into())
    } else if chars > 100 {
        Err(format!("The name is {chars} characters long; use at most 100."))
    } else if name.chars().any(char::is_control) {
        Err("The name cannot contain control characters (line breaks, tabs, NUL).".into())
    } else {
        Ok(name.to_owned())
    }
}

#[component]
pub fn CreateKeyDialog(action: ServerAction<CreateApiKey>, on_close: Callback<()>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let restricted = RwSignal::new(false);
    let inference = RwSignal::new(true);
    let keys_read = RwSignal::new(false);
    let keys_write = RwSignal::new(false);
    let expiry = RwSignal::new(String::from("never"));
    let name_error = RwSignal::new(None::<String>);
    let permissions_error = RwSignal::new(None::<String>);
    let rate_limit = RwSignal::new(String::new());
    let rate_limit_error = RwSignal::new(None::<String>);
    let models_restricted = RwSignal::new(false);
    let models = RwSignal::new(Vec::<String>::new());
    let models_error = RwSignal::new(None::<String>);
    let budget = RwSignal::new(String::new());
    let budget_error = RwSignal::new(None::<String>);
    let expiry_error = RwSignal::new(None::<String>);
    let pending = action.pending();
    let now_ms = chrono::Utc::now().timestamp_millis();

    // Errors from the server land beside their field, or above the buttons.
    Effect::new(move |_| {
        if let Some(Err(PortalError::Invalid { field, message })) = action.value().get() {
            match field.as_str() {
                "name" => name_error.set(Some(message)),
                "rate_limit_per_minute" => rate_limit_error.set(Some(plain_message(&message))),
                "models" => models_error.set(Some(plain_message(&message))),
                "daily_token_limit" => budget_error.set(Some(plain_message(&message))),
                "expires_in_days" | "expires_at" => expiry_error.set(Some(plain_message(&message))),
                "permissions" => permissions_error.set(Some(plain_message(&message))),
                _ => {}
            }
        }
    });
    let form_error = move || match action.value().get() {
        Some(Err(PortalError::Invalid { field, .. }))
            if ["name", "rate_limit_per_minute", "models", "daily_token_limit", "expires_in_days", "expires_at", "permissions"]
                .contains(&field.as_str()) =>
        {
            None
        }
        Some(Err(PortalError::Unauthorized)) => Some("You are signed out. Reload the page and sign in again.".to_owned()),
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let valid_name = validate_name(&name.get_untracked());
        name_error.set(valid_name.as_ref().err().cloned());
        let permissions = if restricted.get_untracked() {
            let chosen: Vec<Permission> =
                [(inference, Permission::Inference), (keys_read, Permission::KeysRead), (keys_write, Permission::KeysWrite)]
                    .into_iter()
                    .filter(|(signal, _)| signal.get_untracked())
                    .map(|(_, p)| p)
                    .collect();
            if chosen.is_empty() {
                permissions_error.set(Some("Choose at least one permission, or give the key all permissions.".into()));
                return;
            }
            Permissions::restricted(chosen)
        } else {
            Permissions::All
        };
        permissions_error.set(None);
        let rate_limit_per_minute = parse_rate_limit(&rate_limit.get_untracked());
        rate_limit_error.set(rate_limit_per_minute.as_ref().err().cloned());
        let daily_token_limit = read_budget(budget, budget_error);
        let Some(models) = read_models(models_restricted, models, models_error) else { return };
        let (Ok(name), Ok(rate_limit_per_minute), Ok(daily_token_limit)) = (valid_name, rate_limit_per_minute, daily_token_limit) else {
            return;
        };
        let expires_in_days = expiry.get_untracked().parse::<u32>().ok();
        action.dispatch(CreateApiKey {
            request: CreateApiKeyRequest { name, permissions, expires_in_days, rate_limit_per_minute, models, daily_token_limit },
        });
    };

    view! {
        <Modal labelled_by="create-key-title" described_by="create-key-desc" on_close width="max-w-xl">
            <form on:submit=submit novalidate>
                <h2 id="create-key-title" class="text-lg font-semibold text-slate-900">"Create API key"</h2>
                <p id="create-key-desc" class="mt-1 text-sm text-slate-600">"Give the key a name that says where it is used, so you can tell it apart later."</p>

                <div class="mt-5">
                    <label for="key-name" class="block text-sm font-medium text-slate-800">"Name"</label>
                    <input
                        id="key-name"
                        name="name"
                        type="text"
                        autocomplete="off"
                        autofocus
                        placeholder="e.g. CI/CD Pipeline or Desktop App"
                        bind:value=name
                        on:input=move |_| name_error.set(None)
                        aria-invalid=move || name_error.get().is_some().to_string()
                        aria-describedby="key-name-error"
                        class=move || input_class(name_error.get().is_some())
                    />
                    <p id="key-name-error" class="mt-1.5 min-h-5 text-sm text-red-700" aria-live="polite">
                        {move || name_error.get()}
                    </p>
                </div>

                <fieldset class="mt-3">
                    <legend class="text-sm font-medium text-slate-800">"Permissions"</legend>
                    <div class="mt-2 grid gap-2 sm:grid-cols-2">
                        <label class="flex cursor-pointer items-start gap-3 rounded-lg border border-slate-200 p-3 has-[:checked]:border-slate-900 has-[:checked]:bg-slate-50">
                            <input type="radio" name="scope" class="mt-0.5" prop:checked=move || !restricted.get() on:change=move |_| restricted.set(false) />
                            <span>
                                <span class="block text-sm font-medium text-slate-900">"All"</span>
                                <span class="block text-xs text-slate-500">"Everything the API offers"</span>
                            </span>
                        </label>
                        <label class="flex cursor-pointer items-start gap-3 rounded-lg border border-slate-200 p-3 has-[:checked]:border-slate-900 has-[:checked]:bg-slate-50">
                            <input type="radio" name="scope" class="mt-0.5" prop:checked=move || restricted.get() on:change=move |_| restricted.set(true) />
                            <span>
                                <span class="block text-sm font-medium text-slate-900">"Restricted"</span>
                                <span class="block text-xs text-slate-500">"Only what you choose"</span>
                            </span>
                        </label>
                    </div>
                    <Show when=move || restricted.get()>
                        <div class="mt-3 space-y-2 rounded-lg bg-slate-50 p-3">
                            {[(inference, Permission::Inference), (keys_read, Permission::KeysRead), (keys_write, Permission::KeysWrite)]
                                .into_iter()
                                .map(|(signal, permission)| view! {
                                    <label class="flex items-center gap-3 text-sm">
                                        <input type="checkbox" bind:checked=signal on:change=move |_| permissions_error.set(None) class="h-4 w-4 rounded border-slate-300" />
                                        <span class="font-mono text-xs text-slate-900">{permission.as_str()}</span>
                                        <span class="text-slate-500">{permission.describe()}</span>
                                    </label>
                                })
                                .collect_view()}
                        </div>
                    </Show>
                    <p class="mt-1.5 min-h-5 text-sm text-red-700" aria-live="polite">{move || permissions_error.get()}</p>
                </fieldset>

                <div class="grid gap-x-4 sm:grid-cols-2">
                <div class="mt-1">
                    <label for="key-expiry" class="block text-sm font-medium text-slate-800">"Expiration"</label>
                    <select
                        id="key-expiry"
                        on:change=move |ev| {
                            expiry.set(event_target_value(&ev));
                            expiry_error.set(None);
                        }
                        aria-describedby="key-expiry-error"
                        class=SELECT_CLASS
                    >
                        <option value="never" selected>"Never"</option>
                        {EXPIRY_CHOICES.into_iter().map(|days| view! {
                            <option value=days.to_string()>{expiry_choice_label(days, now_ms)}</option>
                        }).collect_view()}
                    </select>
                    <p id="key-expiry-error" class="mt-1.5 min-h-5 text-sm text-red-700" aria-live="polite">{move || expiry_error.get()}</p>
                </div>

                <div class="mt-1">
                    <label for="key-rate-limit" class="block text-sm font-medium text-slate-800">
                        "Rate limit " <span class="font-normal text-slate-500">"(requests a minute)"</span>
                    </label>
                    <input
                        id="key-rate-limit"
                        name="rate_limit_per_minute"
                        type="text"
                        inputmode="numeric"
                        autocomplete="off"
                        placeholder="Server default"
                        bind:value=rate_limit
                        on:input=move |_| rate_limit_error.set(None)
                        aria-invalid=move || rate_limit_error.get().is_some().to_string()
                        aria-describedby="key-rate-limit-error"
                        class=move || input_class(rate_limit_error.get().is_some())
                    />
                    <p id="key-rate-limit-error" class="mt-1.5 min-h-5 text-sm text-red-700" aria-live="polite">
                        {move || rate_limit_error.get()}
                    </p>
                </div>
                </div>

                <ModelPicker restricted=models_restricted chosen=models error=models_error />
                <TokenBudgetField value=budget error=budget_error used_today=None />

                {move || form_error().map(|message| view! {
                    <p role="alert" class="mt-4 rounded-lg border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">{message}</p>
                })}

                <div class="mt-6 flex flex-col-reverse gap-3 sm:flex-row sm:justify-end">
                    <button type="button" on:click=move |_| on_close.run(()) class="rounded-lg border border-slate-300 px-4 py-2 text-sm font-semibold text-slate-700 hover:bg-slate-50">
                        "Cancel"
                    </button>
                    <button
                        type="submit"
                        disabled=move || pending.get()
                        aria-busy=move || pending.get().to_string()
                        class="inline-flex items-center justify-center gap-2 rounded-lg bg-slate-900 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-slate-700 disabled:cursor-wait disabled:opacity-70"
                    >
                        {move || if pending.get() { "Creating…" } else { "Create key" }}
                    </button>
                </div>
            </form>
        </Modal>
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_rate_limit, validate_name};

    #[test]
    fn the_rate_limit_is_optional_and_a_positive_whole_number() {
        assert_eq!(parse_rate_limit(""), Ok(None));
        assert_eq!(parse_rate_limit("  "), Ok(None));
        assert_eq!(parse_rate_limit(" 120 "), Ok(Some(120)));
        for bad in ["0", "-1", "1.5", "lots", "99999999999"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_dialog_validates_like_the_server() {
        assert!(validate_name("").is_err());
        assert!(validate_name("  ").is_err());
        assert_eq!(validate_name("  CI/CD Pipeline ").as_deref(), Ok("CI/CD Pipeline"));
        assert!(validate_name(&"x".repeat(100)).is_ok());
        assert!(validate_name(&"x".repeat(101)).is_err());
        assert!(validate_name("a\nb").is_err());
    }
}
