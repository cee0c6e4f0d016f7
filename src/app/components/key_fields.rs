//! Fields the create and Edit dialogs share: the model allow-list picker and the daily
//! token budget.

use leptos::prelude::*;

use crate::app::{components::key_format::parse_token_budget, server_fns::served_models};

/// Reads the model picker: `Some(None)` for every model, `Some(Some(list))` for the chosen
/// ones, `None` — with the error shown beside the picker — when "Only selected models" has
/// none chosen.
pub fn read_models(
    restricted: RwSignal<bool>,
    chosen: RwSignal<Vec<String>>,
    error: RwSignal<Option<String>>,
) -> Option<Option<Vec<String>>> {
    if !restricted.get_untracked() {
        error.set(None);
        return Some(None);
    }
    let list = chosen.get_untracked();
    if list.is_empty() {
        error.set(Some("Choose at least one model, or allow all models.".into()));
        return None;
    }
    error.set(None);
    Some(Some(list))
}

/// Reads the daily token budget field, showing its error (if any) beside it.
pub fn read_budget(value: RwSignal<String>, error: RwSignal<Option<String>>) -> Result<Option<u64>, String> {
    let budget = parse_token_budget(&value.get_untracked());
    error.set(budget.as_ref().err().cloned());
    budget
}

/// The class of a text input, red when invalid.
pub fn input_class(invalid: bool) -> String {
    let base = "mt-1.5 block w-full rounded-lg border px-3 py-2 text-sm shadow-xs focus:outline-none focus:ring-2";
    if invalid {
        format!("{base} border-red-400 focus:border-red-500 focus:ring-red-500/30")
    } else {
        format!("{base} border-slate-300 focus:border-sky-500 focus:ring-sky-500/30")
    }
}

/// The class of a select.
pub const SELECT_CLASS: &str = "mt-1.5 block w-full rounded-lg border border-slate-300 bg-white px-3 py-2 text-sm shadow-xs focus:border-sky-500 focus:outline-none focus:ring-2 focus:ring-sky-500/30";

/// The models a key may use: "All models", or only those checked among the server's models
/// (fetched when the dialog opens: dialogs exist only in the browser); `extra` are models the
/// key has that the server no longer serves (so they can still be unchecked).
///
/// The two choices are there from the first frame, the second disabled until the list has
/// come: the dialog keeps its size while the list loads, so nothing under it (the dialog's
/// buttons) moves beneath a pointer about to click it.
#[component]
pub fn ModelPicker(
    restricted: RwSignal<bool>,
    chosen: RwSignal<Vec<String>>,
    error: RwSignal<Option<String>>,
    #[prop(optional)] extra: Vec<String>,
) -> impl IntoView {
    let served = LocalResource::new(served_models);
    // The models offered (the server's, then the key's others) and whether the server serves
    // none; `None` while the list loads.
    let offered = Memo::new(move |_| {
        served.get().map(|answer| {
            let mut models = answer.unwrap_or_default();
            let none_served = models.is_empty();
            for m in &extra {
                if !models.contains(m) {
                    models.push(m.clone());
                }
            }
            (models, none_served)
        })
    });
    let loading = move || offered.with(Option::is_none);
    let no_choice = move || offered.with(|o| o.as_ref().is_none_or(|(models, _)| models.is_empty()));
    let radio = "flex cursor-pointer items-start gap-3 rounded-lg border border-slate-200 p-3 has-[:checked]:border-slate-900 has-[:checked]:bg-slate-50 has-[:disabled]:cursor-not-allowed has-[:disabled]:opacity-60";
    view! {
        <fieldset class="mt-1" aria-describedby="key-models-error" aria-busy=move || loading().to_string()>
            <legend class="text-sm font-medium text-slate-800">"Models"</legend>
            <div class="mt-2 grid gap-2 sm:grid-cols-2">
                <label class=radio>
                    <input type="radio" name="models-scope" class="mt-0.5" prop:checked=move || !restricted.get()
                        on:change=move |_| { restricted.set(false); error.set(None); } />
                    <span>
                        <span class="block text-sm font-medium text-slate-900">"All models"</span>
                        <span class="block text-xs text-slate-500">"Including models added later"</span>
                    </span>
                </label>
                <label class=radio>
                    <input type="radio" name="models-scope" class="mt-0.5" disabled=no_choice prop:checked=move || restricted.get()
                        on:change=move |_| restricted.set(true) />
                    <span>
                        <span class="block text-sm font-medium text-slate-900">"Only selected models"</span>
                        <span class="block text-xs text-slate-500">{move || if loading() { "Loading models…" } else { "Others answer 403" }}</span>
                    </span>
                </label>
            </div>
            {move || offered.with(|o| o.as_ref().is_some_and(|(_, none_served)| *none_served)).then(|| view! {
                <p role="status" class="mt-2 rounded-lg border border-amber-200 bg-amber-50 px-3 py-2 text-sm text-amber-900">
                    "No model provider is configured on this server yet, so a key can only allow all models."
                </p>
            })}
            <Show when=move || restricted.get()>
                {move || match offered.get() {
                    None => view! { <p class="mt-3 rounded-lg bg-slate-50 p-3 text-sm text-slate-500">"Loading models…"</p> }.into_any(),
                    Some((models, _)) => view! {
                        <ul aria-label="Allowed models" class="mt-3 grid max-h-48 gap-1 overflow-y-auto rounded-lg bg-slate-50 p-3 sm:grid-cols-2">
                            {models.into_iter().map(|model| {
                                let m = model.clone();
                                let checked = m.clone();
                                view! {
                                    <li>
                                        <label class="flex cursor-pointer items-center gap-2.5 rounded px-1 py-1 text-sm hover:bg-white">
                                            <input
                                                type="checkbox"
                                                class="h-4 w-4 rounded border-slate-300"
                                                prop:checked=move || chosen.with(|c| c.contains(&checked))
                                                on:change=move |ev| {
                                                    let on = event_target_checked(&ev);
                                                    chosen.update(|c| {
                                                        c.retain(|x| *x != m);
                                                        if on {
                                                            c.push(m.clone());
                                                        }
                                                    });
                                                    error.set(None);
                                                }
                                            />
                                            <span class="truncate font-mono text-xs text-slate-800">{model}</span>
                                        </label>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                }}
            </Show>
            <p id="key-models-error" class="mt-1.5 min-h-5 text-sm text-red-700" aria-live="polite">{move || error.get()}</p>
        </fieldset>
    }
}

/// The optional daily token budget. `used_today` shows beside it in the Edit dialog.
#[component]
pub fn TokenBudgetField(value: RwSignal<String>, error: RwSignal<Option<String>>, used_today: Option<String>) -> impl IntoView {
    view! {
        <div class="mt-1">
            <label for="key-budget" class="block text-sm font-medium text-slate-800">
                "Daily token budget " <span class="font-normal text-slate-500">"(tokens a UTC day, optional)"</span>
            </label>
            <input
                id="key-budget"
                name="daily_token_limit"
                type="text"
                inputmode="numeric"
                autocomplete="off"
                placeholder="No budget"
                bind:value=value
                on:input=move |_| error.set(None)
                aria-invalid=move || error.get().is_some().to_string()
                aria-describedby="key-budget-help key-budget-error"
                class=move || input_class(error.get().is_some())
            />
            <p id="key-budget-help" class="mt-1 text-xs text-slate-500">
                "Requests past the budget answer 429 until midnight UTC."
                {used_today.map(|used| format!(" {used} used today."))}
            </p>
            <p id="key-budget-error" class="mt-1 min-h-5 text-sm text-red-700" aria-live="polite">{move || error.get()}</p>
        </div>
    }
}
