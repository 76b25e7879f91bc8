//! The host's route table: the router is built through [`RouteTable`], which records every
//! method and path it adds, so [`routes`] lists exactly what [`crate::router`] serves (the
//! tenant-isolation test walks it, and fails for a route it has no case for).

use axum::Router;
use axum::handler::Handler;
use axum::routing::{get, post};

use crate::app::App;

/// One route: an HTTP method and a path pattern as the router matches it
/// (`/v1/agents/{agent}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path pattern.
    pub path: &'static str,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A router under construction and the routes added to it.
pub(crate) struct RouteTable {
    router: Router<App>,
    routes: Vec<Route>,
}

impl RouteTable {
    /// No routes.
    pub(crate) fn new() -> Self {
        Self {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    /// Adds `GET path`.
    pub(crate) fn get<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, App>,
        T: 'static,
    {
        self.router = self.router.route(path, get(handler));
        self.routes.push(Route {
            method: "GET",
            path,
        });
        self
    }

    /// Adds `POST path`.
    pub(crate) fn post<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, App>,
        T: 'static,
    {
        self.router = self.router.route(path, post(handler));
        self.routes.push(Route {
            method: "POST",
            path,
        });
        self
    }

    /// Both tables' routes.
    pub(crate) fn merge(mut self, other: RouteTable) -> Self {
        self.router = self.router.merge(other.router);
        self.routes.extend(other.routes);
        self
    }

    /// The router and its routes.
    pub(crate) fn into_parts(self) -> (Router<App>, Vec<Route>) {
        (self.router, self.routes)
    }
}

/// Every route the host serves, in the order the router adds them.
pub fn routes() -> Vec<Route> {
    table().into_parts().1
}

/// The API's and the reviewer page's routes.
pub(crate) fn table() -> RouteTable {
    crate::api::routes().merge(crate::review::routes())
}
