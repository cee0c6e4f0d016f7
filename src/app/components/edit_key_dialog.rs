//! The Edit dialog of an active key: its name, permissions (only narrower: those the key
//! lacks cannot be checked), expiry (only earlier, or kept), rate limit, models and daily token
//! budget. What it sends is the key's settings as they should be; the server changes what
//! differs. Errors show beside their field.

use leptos::{ev::SubmitEvent, prelude::*};

use crate::{
    app::{
        components::{
            create_key_dialog::{parse_rate_limit, validate_name},
            dialog::Modal,
            key_fields::{ModelPicker, SELECT_CLASS, TokenBudgetField, input_class, read_budget, read_models},
            key_format::compact_count,
            key_format::{earlier_expiry_choices, expiry_choice_label, plain_message},
        },
        pages::sessions::go_to_login,
        server_fns::EditApiKey,
    },
    display::format_date_time,
    permissions::{Permission, Permissions},
    wire::{ApiKeyView, EditApiKeyRequest, PortalError},
};

/// The fields whose server errors show beside them.
const FIELDS: [&str; 7] = ["name", "permissions", "expires_in_days", "expires_at", "rate_limit_per_minute", "models", "daily_token_limit"];

#[component]
pub fn EditKeyDialog(key: ApiKeyView, action: ServerAction<EditApiKey>, on_close: Callback<()>) -> impl IntoView {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let id = key.id;
    let current = key.permissions;
    let had_all = current == Permissions::All;
    let name = RwSignal::new(key.name.clone());
    let restricted = RwSignal::new(!had_all);
    let checks: Vec<(Permission, RwSignal<bool>)> = Permission::ALL.into_iter().map(|p| (p, RwSignal::new(current.allows(p)))).collect();
    let checks = StoredValue::new(checks);
    let expiry = RwSignal::new(String::from("keep"));
    let rate_limit = RwSignal::new(key.rate_limit_per_minute.map(|r| r.to_string()).unwrap_or_default());
    let models_restricted = RwSignal::new(key.models.is_some());
    let models = RwSignal::new(key.models.clone().unwrap_or_default());
    let budget = RwSignal::new(key.daily_token_limit.map(|b| b.to_string()).unwrap_or_default());

    let name_error = RwSignal::new(None::<String>);
    let permissions_error = RwSignal::new(None::<String>);
    let expiry_error = RwSignal::new(None::<String>);
    let rate_limit_error = RwSignal::new(None::<String>);
    let models_error = RwSignal::new(None::<String>);
    let budget_error = RwSignal::new(None::<String>);
    let pending = action.pending();

    Effect::new(move |_| match action.value().get() {
        Some(Err(PortalError::Invalid { field, message })) => {
            let message = plain_message(&message);
            match field.as_str() {
                "name" => name_error.set(Some(message)),
                "permissions" => permissions_error.set(Some(message)),
                "expires_in_days" | "expires_at" => expiry_error.set(Some(message)),
                "rate_limit_per_minute" => rate_limit_error.set(Some(message)),
                "models" => models_error.set(Some(message)),
                "daily_token_limit" => budget_error.set(Some(message)),
                _ => {}
            }
        }
        Some(Err(PortalError::Unauthorized)) => go_to_login(),
        _ => {}
    });
    let form_error = move || match action.value().get() {
        Some(Err(PortalError::Invalid { field, .. })) if FIELDS.contains(&field.as_str()) => None,
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
                checks.with_value(|c| c.iter().filter(|(p, on)| on.get_untracked() && current.allows(*p)).map(|(p, _)| *p).collect());
            if chosen.is_empty() {
                permissions_error.set(Some("Keep at least one permission. To stop the key working, revoke it.".into()));
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
        action.dispatch(EditApiKey {
            request: EditApiKeyRequest { id, name, permissions, expires_in_days, rate_limit_per_minute, models, daily_token_limit },
        });
    };

    let keep_label = match key.expires_at {
        Some(at) => format!("Keep current \u{2014} {}", format_date_time(at)),
        None => "Keep current \u{2014} never expires".to_owned(),
    };
    let choices = earlier_expiry_choices(key.expires_at, now_ms);
    let used_today = key.daily_token_limit.and(key.tokens_today).map(compact_count);
    let radio = "flex items-start gap-3 rounded-lg border border-slate-200 p-3 has-[:checked]:border-slate-900 has-[:checked]:bg-slate-50 has-[:disabled]:cursor-not-allowed has-[:disabled]:opacity-60";

    view! {
        <Modal labelled_by="edit-key-title" described_by="edit-key-desc" on_close width="max-w-xl">
            <form on:submit=submit novalidate>
                <h2 id="edit-key-title" class="text-lg font-semibold text-slate-900">"Edit API key"</h2>
                <p id="edit-key-desc" class="mt-1 text-sm text-slate-600">
                    "Changes apply to "
                    <span class="font-mono text-slate-800">{key.hint.clone()}</span>
                    " at once. A key's access can only be narrowed here: to give it more, create a new key."
                </p>

                <div class="mt-5">
                    <label for="edit-key-name" class="block text-sm font-medium text-slate-800">"Name"</label>
                    <input
                        id="edit-key-name"
                        name="name"
                        type="text"
                        autocomplete="off"
                        autofocus
                        bind:value=name
                        on:input=move |_| name_error.set(None)
                        aria-invalid=move || name_error.get().is_some().to_string()
                        aria-describedby="edit-key-name-error"
                        class=move || input_class(name_error.get().is_some())
                    />
                    <p id="edit-key-name-error" class="mt-1.5 min-h-5 text-sm text-red-700" aria-live="polite">{move || name_error.get()}</p>
                </div>

                <fieldset class="mt-1" aria-describedby="edit-key-permissions-help">
                    <legend class="text-sm font-medium text-slate-800">"Permissions"</legend>
                    <p id="edit-key-permissions-help" class="mt-0.5 text-xs text-slate-500">
                        {if had_all { "Permissions can only be narrowed." } else { "Permissions can only be narrowed: those this key does not have cannot be added." }}
                    </p>
                    <div class="mt-2 grid gap-2 sm:grid-cols-2">
                        <label class=radio>
                            <input type="radio" name="edit-scope" class="mt-0.5" disabled=!had_all prop:checked=move || !restricted.get()
                                on:change=move |_| { restricted.set(false); permissions_error.set(None); } />
                            <span>
                                <span class="block text-sm font-medium text-slate-900">"All"</span>
                                <span class="block text-xs text-slate-500">{if had_all { "Everything the API offers" } else { "Not available: the key is restricted" }}</span>
                            </span>
                        </label>
                        <label class=radio>
                            <input type="radio" name="edit-scope" class="mt-0.5" prop:checked=move || restricted.get() on:change=move |_| restricted.set(true) />
                            <span>
                                <span class="block text-sm font-medium text-slate-900">"Restricted"</span>
                                <span class="block text-xs text-slate-500">"Only what you choose"</span>
                            </span>
                        </label>
                    </div>
                    <Show when=move || restricted.get()>
                        <div class="mt-3 space-y-2 rounded-lg bg-slate-50 p-3">
                            {checks.get_value().into_iter().map(|(permission, signal)| {
                                let granted = current.allows(permission);
                                view! {
                                    <label class=if granted { "flex items-center gap-3 text-sm" } else { "flex cursor-not-allowed items-center gap-3 text-sm opacity-60" }>
                                        <input type="checkbox" bind:checked=signal disabled=!granted on:change=move |_| permissions_error.set(None) class="h-4 w-4 rounded border-slate-300" />
                                        <span class="font-mono text-xs text-slate-900">{permission.as_str()}</span>
                                        <span class="text-slate-500">{if granted { permission.describe().to_owned() } else { "Not granted to this key".to_owned() }}</span>
                                    </label>
                                }
                            }).collect_view()}
                        </div>
                    </Show>
                    <p class="mt-1.5 min-h-5 text-sm text-red-700" aria-live="polite">{move || permissions_error.get()}</p>
                </fieldset>

                <div class="grid gap-x-4 sm:grid-cols-2">
                    <div>
                        <label for="edit-key-expiry" class="block text-sm font-medium text-slate-800">"Expiration"</label>
                        <select
                            id="edit-key-expiry"
                            on:change=move |ev| {
                                expiry.set(event_target_value(&ev));
                                expiry_error.set(None);
                            }
                            aria-describedby="edit-key-expiry-help"
                            class=SELECT_CLASS
                        >
                            <option value="keep" selected>{keep_label}</option>
                            {choices.into_iter().map(|days| view! {
                                <option value=days.to_string()>{expiry_choice_label(days, now_ms)}</option>
                            }).collect_view()}
                        </select>
                        <p id="edit-key-expiry-help" class="mt-1 text-xs text-slate-500">"Only an earlier expiry can be set."</p>
                        <p class="mt-1 min-h-5 text-sm text-red-700" aria-live="polite">{move || expiry_error.get()}</p>
                    </div>
                    <div>
                        <label for="edit-key-rate-limit" class="block text-sm font-medium text-slate-800">
                            "Rate limit " <span class="font-normal text-slate-500">"(requests a minute)"</span>
                        </label>
                        <input
                            id="edit-key-rate-limit"
                            name="rate_limit_per_minute"
                            type="text"
                            inputmode="numeric"
                            autocomplete="off"
                            placeholder="Server default"
                            bind:value=rate_limit
                            on:input=move |_| rate_limit_error.set(None)
                            aria-invalid=move || rate_limit_error.get().is_some().to_string()
                            aria-describedby="edit-key-rate-limit-error"
                            class=move || input_class(rate_limit_error.get().is_some())
                        />
                        <p id="edit-key-rate-limit-error" class="mt-1 min-h-5 text-sm text-red-700" aria-live="polite">{move || rate_limit_error.get()}</p>
                    </div>
                </div>

                <ModelPicker restricted=models_restricted chosen=models error=models_error extra=key.models.clone().unwrap_or_default() />
                <TokenBudgetField value=budget error=budget_error used_today />

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
                        {move || if pending.get() { "Saving…" } else { "Save changes" }}
                    </button>
                </div>
            </form>
        </Modal>
    }
}
