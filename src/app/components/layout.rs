//! The page frame: the top bar with the user menu, and the settings sidebar.

use leptos::prelude::*;
use leptos_router::components::{A, Outlet};

use crate::{
    app::{
        components::icons::{DeviceIcon, KeyIcon, LogoMark, PeopleIcon, ShieldIcon},
        server_fns::current_user,
    },
    wire::UserView,
};

/// The top bar: product name on the left, the signed-in user's menu on the right.
#[component]
pub fn AppHeader() -> impl IntoView {
    let user = Resource::new(|| (), |()| current_user());
    view! {
        <header class="sticky top-0 z-30 border-b border-slate-200 bg-white/90 backdrop-blur">
            <div class="mx-auto flex h-14 w-full max-w-6xl items-center justify-between px-4 sm:px-6 lg:px-8">
                <a href="/" rel="external" class="flex items-center gap-2.5 rounded-md text-[15px] font-semibold tracking-tight text-slate-900 focus-visible:outline-2 focus-visible:outline-offset-4 focus-visible:outline-sky-500">
                    <LogoMark class="h-7 w-7" />
                    <span>"Workjet"</span>
                    <span class="hidden rounded-full border border-slate-200 px-2 py-0.5 text-xs font-medium text-slate-500 sm:inline">"Portal"</span>
                </a>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match user.await {
                            Ok(Some(user)) => view! { <UserMenu user /> }.into_any(),
                            _ => view! {
                                <a href="/login" class="rounded-md px-3 py-1.5 text-sm font-medium text-slate-700 hover:bg-slate-100">"Sign in"</a>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </div>
        </header>
    }
}

/// Initials for an avatar ("Ada Lovelace" → "AL").
pub fn initials(name: &str, email: &str) -> String {
    let from_name: String = name.split_whitespace().filter_map(|w| w.chars().next()).take(2).collect();
    if from_name.is_empty() {
        email.chars().next().map(|c| c.to_uppercase().collect()).unwrap_or_default()
    } else {
        from_name.to_uppercase()
    }
}

/// The signed-in user's name, email and the sign-out button.
#[component]
fn UserMenu(user: UserView) -> impl IntoView {
    let avatar = initials(&user.name, &user.email);
    view! {
        <div class="flex items-center gap-3">
            <div class="hidden text-right sm:block">
                <p class="text-sm font-medium leading-tight text-slate-900">{user.name.clone()}</p>
                <p class="text-xs leading-tight text-slate-500">{user.email.clone()}</p>
            </div>
            <span class="flex h-8 w-8 items-center justify-center rounded-full bg-sky-100 text-xs font-semibold text-sky-800" aria-hidden="true">{avatar}</span>
            <form method="post" action="/auth/logout">
                <button type="submit" class="rounded-md border border-slate-200 px-3 py-1.5 text-sm font-medium text-slate-700 shadow-xs hover:bg-slate-50 focus-visible:outline-2 focus-visible:outline-sky-500">
                    "Sign out"
                </button>
            </form>
        </div>
    }
}

/// Settings pages: a sidebar of sections, then the section.
#[component]
pub fn SettingsLayout() -> impl IntoView {
    // The Admin link, for administrators only (the page itself asks the server again).
    let me = Resource::new(|| (), |()| current_user());
    let link = "flex items-center gap-2.5 rounded-md px-3 py-2 text-sm font-medium text-slate-600 hover:bg-slate-100 hover:text-slate-900 aria-[current=page]:bg-white aria-[current=page]:text-slate-900 aria-[current=page]:shadow-sm aria-[current=page]:ring-1 aria-[current=page]:ring-slate-200";
    view! {
        <div class="flex flex-col gap-6 md:flex-row md:gap-10">
            <nav aria-label="Settings" class="shrink-0 md:w-52">
                <p class="mb-2 px-3 text-xs font-semibold uppercase tracking-wider text-slate-500">"Settings"</p>
                <ul class="flex flex-wrap gap-1 md:flex-col">
                    <li>
                        <A href="/settings/api-keys" attr:class=link>
                            <KeyIcon class="h-4 w-4" />
                            "API Keys"
                        </A>
                    </li>
                    <li>
                        <A href="/settings/sessions" attr:class=link>
                            <DeviceIcon class="h-4 w-4" />
                            "Sessions"
                        </A>
                    </li>
                    <li>
                        <A href="/settings/security-log" attr:class=link>
                            <ShieldIcon class="h-4 w-4" />
                            "Security log"
                        </A>
                    </li>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            matches!(me.await, Ok(Some(user)) if user.admin).then(|| view! {
                                <li>
                                    <A href="/admin" attr:class=link>
                                        <PeopleIcon class="h-4 w-4" />
                                        "Admin"
                                    </A>
                                </li>
                            })
                        })}
                    </Transition>
                </ul>
            </nav>
            <div class="min-w-0 flex-1">
                <Outlet />
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::initials;

    #[test]
    fn initials_come_from_the_name_or_the_email() {
        assert_eq!(initials("Ada Lovelace", "ada@example.com"), "AL");
        assert_eq!(initials("  ", "bob@example.com"), "B");
        assert_eq!(initials("Émile Zola Jr", "e@x"), "ÉZ");
    }
}
