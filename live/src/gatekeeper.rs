//! Who the RTSP server lets stay connected: a bound on clients in all and
//! per address, a deadline to log in, an idle timeout, and a budget of
//! wrong passwords. The rules are [`Register`], kept apart from
//! gst-rtsp-server so that they can be tested on their own; [`Gatekeeper`]
//! is the `RTSPAuth` that applies them.

use std::collections::HashMap;
use std::ffi::CStr;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::glib;
use gst::glib::subclass::prelude::*;
use gst::glib::translate::ToGlibPtr;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;

/// Clients connected at once; beyond this, a new one takes the place of
/// the oldest that has not logged in, or is refused.
pub const MAX_CLIENTS: usize = 64;
/// Clients connected at once from one address (one /64 for IPv6).
pub const MAX_CLIENTS_PER_ADDRESS: usize = 16;
/// Time a connection has to log in (to send its first request, without
/// `--rtsp-user`) before it is closed.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a logged-in client with no session may send nothing before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Wrong passwords on one connection before it is closed.
pub const WRONG_PASSWORDS_PER_CONNECTION: u32 = 3;
/// Wrong passwords an address may send at once; the budget then refills
/// by one every [`PASSWORD_REFILL`], and credentials sent while it is empty
/// are refused unchecked, with the connection closed.
pub const PASSWORD_BURST: f64 = 5.0;
/// How long an address waits for one more wrong password.
pub const PASSWORD_REFILL: Duration = Duration::from_secs(1);
/// How long a client that is to be closed has to receive its last answer.
const CLOSE_DELAY: Duration = Duration::from_millis(50);
/// Addresses remembered for their wrong passwords before those whose
/// budget has refilled are forgotten.
const REMEMBERED_ADDRESSES: usize = 1024;

/// The address a bound applies to: IPv4 as it is (an IPv4-mapped IPv6
/// address as IPv4), IPv6 by its /64, which one host commonly holds whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddressKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey(v4.into()),
                None => AddressKey(IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())),
            },
        }
    }
}

/// What to do with a new connection.
#[derive(Debug, PartialEq)]
pub enum Admission<C> {
    /// Let it in, after closing these clients (oldest not logged in) to make room.
    Admit { evict: Vec<C> },
    /// Close it: every place is taken by a logged-in client.
    Refuse,
}

struct Entry<C> {
    client: C,
    address: AddressKey,
    since: Instant,
    last_request: Instant,
    logged_in: bool,
    wrong_passwords: u32,
    /// To be closed: its credentials are no longer checked.
    closing: bool,
}

/// A budget of wrong passwords, refilled over time.
struct Budget {
    left: f64,
    at: Instant,
}

impl Budget {
    fn refill(&mut self, now: Instant) {
        let refilled = now.duration_since(self.at).as_secs_f64() / PASSWORD_REFILL.as_secs_f64();
        self.left = (self.left + refilled).min(PASSWORD_BURST);
        self.at = now;
    }
}

/// The clients connected, and the addresses that sent wrong passwords.
pub struct Register<C> {
    entries: Vec<Entry<C>>,
    budgets: HashMap<AddressKey, Budget>,
}

impl<C: Clone + PartialEq> Default for Register<C> {
    fn default() -> Self {
        Register {
            entries: Vec::new(),
            budgets: HashMap::new(),
        }
    }
}

impl<C: Clone + PartialEq> Register<C> {
    /// Whether a new connection from `address` may come in, and whom it displaces.
    pub fn admit(&mut self, address: AddressKey) -> Admission<C> {
        let from_address = self.entries.iter().filter(|e| e.address == address).count();
        let (full, room) = if from_address >= MAX_CLIENTS_PER_ADDRESS {
            (true, self.oldest_waiting(|e| e.address == address))
        } else if self.entries.len() >= MAX_CLIENTS {
            (true, self.oldest_waiting(|_| true))
        } else {
            (false, None)
        };
        let evict = match (full, room) {
            (false, _) => Vec::new(),
            (true, Some(entry)) => vec![entry.client],
            (true, None) => return Admission::Refuse,
        };
        Admission::Admit { evict }
    }

    /// Removes and returns the oldest client not logged in among those `matching`.
    fn oldest_waiting(&mut self, matching: impl Fn(&Entry<C>) -> bool) -> Option<Entry<C>> {
        let at = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.logged_in && matching(e))
            .min_by_key(|(_, e)| e.since)
            .map(|(at, _)| at)?;
        Some(self.entries.remove(at))
    }

    pub fn add(&mut self, client: C, address: AddressKey, now: Instant) {
        self.entries.push(Entry {
            client,
            address,
            since: now,
            last_request: now,
            logged_in: false,
            wrong_passwords: 0,
            closing: false,
        });
    }

    pub fn remove(&mut self, client: &C) {
        self.entries.retain(|e| &e.client != client);
    }

    fn entry(&mut self, client: &C) -> Option<&mut Entry<C>> {
        self.entries.iter_mut().find(|e| &e.client == client)
    }

    /// A request from `client`: its idle time starts again.
    pub fn request(&mut self, client: &C, now: Instant) {
        if let Some(entry) = self.entry(client) {
            entry.last_request = now;
        }
    }

    pub fn logged_in(&mut self, client: &C) {
        if let Some(entry) = self.entry(client) {
            entry.logged_in = true;
        }
    }

    /// Whether credentials from `client` may be checked now: it is not
    /// being closed and its address has wrong passwords left in its budget.
    pub fn may_try(&mut self, client: &C, now: Instant) -> bool {
        let Some(address) = self.entry(client).filter(|e| !e.closing).map(|e| e.address) else {
            return false;
        };
        match self.budgets.get_mut(&address) {
            Some(budget) => {
                budget.refill(now);
                budget.left >= 1.0
            }
            None => true,
        }
    }

    /// A wrong password from `client`; true when it must be disconnected.
    pub fn wrong_password(&mut self, client: &C, now: Instant) -> bool {
        let Some(entry) = self.entry(client) else {
            return true;
        };
        entry.wrong_passwords += 1;
        let (address, wrong) = (entry.address, entry.wrong_passwords);
        if self.budgets.len() >= REMEMBERED_ADDRESSES {
            self.budgets.retain(|_, b| {
                b.refill(now);
                b.left < PASSWORD_BURST
            });
        }
        let budget = self.budgets.entry(address).or_insert(Budget {
            left: PASSWORD_BURST,
            at: now,
        });
        budget.refill(now);
        budget.left = (budget.left - 1.0).max(0.0);
        let closing = wrong >= WRONG_PASSWORDS_PER_CONNECTION || budget.left < 1.0;
        if let Some(entry) = self.entry(client) {
            entry.closing |= closing;
        }
        closing
    }

    /// Clients past their login deadline (removed), and logged-in clients
    /// idle for longer than [`IDLE_TIMEOUT`] (kept: they are closed only if
    /// they have no session, which the caller checks).
    pub fn overdue(&mut self, now: Instant) -> (Vec<C>, Vec<C>) {
        let mut late = Vec::new();
        self.entries.retain(|e| {
            let out = !e.logged_in && now.duration_since(e.since) >= LOGIN_TIMEOUT;
            if out {
                late.push(e.client.clone());
            }
            !out
        });
        let idle = self
            .entries
            .iter()
            .filter(|e| e.logged_in && now.duration_since(e.last_request) >= IDLE_TIMEOUT)
            .map(|e| e.client.clone())
            .collect();
        (late, idle)
    }
}

/// State shared by the gatekeeper's callbacks, which run on the server's
/// accepting thread and on the clients' threads.
struct Shared {
    register: Mutex<Register<gst_rtsp_server::RTSPClient>>,
    /// Whether clients log in with a password (`--rtsp-user`), or by
    /// sending a first request.
    needs_password: bool,
    /// The context each client is served on, known from its first request;
    /// see [`Shared::close`].
    contexts: Mutex<HashMap<gst_rtsp_server::RTSPClient, glib::MainContext>>,
    /// The server's context, where a client that has sent no request is closed.
    context: glib::MainContext,
}

impl Shared {
    fn register(&self) -> MutexGuard<'_, Register<gst_rtsp_server::RTSPClient>> {
        self.register.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn contexts(&self) -> MutexGuard<'_, HashMap<gst_rtsp_server::RTSPClient, glib::MainContext>> {
        self.contexts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the context of the thread that is serving `client`.
    fn serving(&self, client: &gst_rtsp_server::RTSPClient) {
        let mut contexts = self.contexts();
        if !contexts.contains_key(client) {
            if let Some(context) = glib::main_current_source().and_then(|s| s.context()) {
                contexts.insert(client.clone(), context);
            }
        }
    }

    /// Closes `client` after `delay` on the context that serves it, where
    /// gst-rtsp-server closes clients itself: a connection is not safe to
    /// close while the client's thread reads it, and closed so from the
    /// server's thread (a guesser's, 50 ms after its third wrong password)
    /// it left that thread reading it for ever, the socket open and
    /// unanswered. A client that has sent no request yet is closed on the
    /// server's context.
    fn close(&self, client: &gst_rtsp_server::RTSPClient, delay: Duration) {
        let context = self.contexts().get(client).cloned();
        let client = client.clone();
        let close = glib::timeout_source_new(delay, None, glib::Priority::DEFAULT, move || {
            client.close();
            glib::ControlFlow::Break
        });
        close.attach(Some(context.as_ref().unwrap_or(&self.context)));
    }
}

mod imp {
    use std::sync::OnceLock;

    use super::*;

    #[derive(Default)]
    pub struct Gatekeeper {
        pub(super) shared: OnceLock<Arc<Shared>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Gatekeeper {
        const NAME: &'static str = "GendrRtspGatekeeper";
        type Type = super::Gatekeeper;
        type ParentType = gst_rtsp_server::RTSPAuth;
    }

    impl ObjectImpl for Gatekeeper {}

    impl RTSPAuthImpl for Gatekeeper {
        fn authenticate(&self, ctx: &gst_rtsp_server::RTSPContext) -> bool {
            let (Some(shared), Some(client)) = (self.shared.get(), ctx.client()) else {
                return self.parent_authenticate(ctx);
            };
            let offered = ctx
                .request()
                .is_some_and(|r| !r.parse_auth_credentials().is_empty());
            let now = Instant::now();
            if offered && !shared.register().may_try(client, now) {
                // Unchecked: the token stays unset, so the answer is 401.
                shared.close(client, CLOSE_DELAY);
                return true;
            }
            let done = self.parent_authenticate(ctx);
            if ctx.token().is_some() {
                shared.register().logged_in(client);
            } else if offered && shared.register().wrong_password(client, now) {
                tracing::warn!(
                    "RTSP client {}: wrong passwords, disconnected",
                    client_address(client).map_or("?".into(), |a| a.to_string())
                );
                shared.close(client, CLOSE_DELAY);
            }
            done
        }

        fn check(&self, ctx: &gst_rtsp_server::RTSPContext, check: &glib::GString) -> bool {
            let Some(shared) = self.shared.get() else {
                return self.parent_check(ctx, check);
            };
            if check.as_str() == gst_rtsp_server::RTSP_AUTH_CHECK_CONNECT.as_str() {
                // SAFETY: a connect check's context holds the new connection.
                let address = unsafe { connection_address((*ctx.to_glib_none().0).conn) };
                let Some(address) = address else {
                    return false;
                };
                let admission = shared.register().admit(address.into());
                match admission {
                    Admission::Refuse => {
                        tracing::debug!("RTSP connection from {address} refused: server full");
                        return false;
                    }
                    Admission::Admit { evict } => {
                        evict.iter().for_each(|c| shared.close(c, Duration::ZERO))
                    }
                }
            } else if check.as_str() == gst_rtsp_server::RTSP_AUTH_CHECK_URL.as_str() {
                if let Some(client) = ctx.client() {
                    shared.serving(client);
                    let mut register = shared.register();
                    register.request(client, Instant::now());
                    if !shared.needs_password {
                        register.logged_in(client);
                    }
                }
            }
            self.parent_check(ctx, check)
        }
    }
}

glib::wrapper! {
    /// The server's `RTSPAuth`: gst-rtsp-server's own checks of credentials
    /// and roles, with [`Register`]'s bounds around them.
    pub struct Gatekeeper(ObjectSubclass<imp::Gatekeeper>) @extends gst_rtsp_server::RTSPAuth;
}

impl Gatekeeper {
    /// A gatekeeper whose clients log in with a password when
    /// `needs_password`, closing clients that have sent no request on
    /// `context`, the server's.
    pub fn new(needs_password: bool, context: &glib::MainContext) -> Gatekeeper {
        let gatekeeper: Gatekeeper = glib::Object::new();
        let shared = Arc::new(Shared {
            register: Mutex::default(),
            needs_password,
            contexts: Mutex::default(),
            context: context.clone(),
        });
        let _ = gatekeeper.imp().shared.set(shared);
        gatekeeper
    }

    fn shared(&self) -> &Arc<Shared> {
        self.imp().shared.get().expect("set in new()")
    }

    /// Registers a client the server has just accepted.
    pub fn client_connected(&self, client: &gst_rtsp_server::RTSPClient) {
        let Some(address) = client_address(client) else {
            return;
        };
        self.shared()
            .register()
            .add(client.clone(), address.into(), Instant::now());
        let shared = Arc::downgrade(self.shared());
        client.connect_closed(move |client| {
            if let Some(shared) = shared.upgrade() {
                shared.register().remove(client);
                shared.contexts().remove(client);
            }
        });
    }

    /// Closes the clients past their login deadline and the idle ones with
    /// no session; called every second on the server's context.
    pub fn sweep(&self) {
        let (late, idle) = self.shared().register().overdue(Instant::now());
        for client in late {
            tracing::debug!("RTSP client closed: no login within {LOGIN_TIMEOUT:?}");
            self.shared().close(&client, Duration::ZERO);
        }
        for client in idle {
            if client.session_filter(None).is_empty() {
                tracing::debug!("RTSP client closed: idle for {IDLE_TIMEOUT:?}");
                self.shared().close(&client, Duration::ZERO);
            }
        }
    }
}

/// The peer address of `client`'s connection.
fn client_address(client: &gst_rtsp_server::RTSPClient) -> Option<IpAddr> {
    // SAFETY: `client` is alive; the connection it returns is borrowed.
    unsafe {
        connection_address(gst_rtsp_server::ffi::gst_rtsp_client_get_connection(
            client.to_glib_none().0,
        ))
    }
}

/// The peer address of an RTSP connection, if it has one.
///
/// # Safety
/// `connection` is null or a live `GstRTSPConnection`.
unsafe fn connection_address(
    connection: *mut gst_rtsp_server::gst_rtsp::ffi::GstRTSPConnection,
) -> Option<IpAddr> {
    if connection.is_null() {
        return None;
    }
    let ip = gst_rtsp_server::gst_rtsp::ffi::gst_rtsp_connection_get_ip(connection);
    if ip.is_null() {
        return None;
    }
    let text = CStr::from_ptr(ip).to_str().ok()?;
    // A scoped IPv6 address ends in %interface.
    text.split('%').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn key(text: &str) -> AddressKey {
        text.parse::<IpAddr>().unwrap().into()
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(
            key("::ffff:192.0.2.7"),
            AddressKey(Ipv4Addr::new(192, 0, 2, 7).into())
        );
        assert_eq!(
            key("::1"),
            AddressKey(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            "loopback shares ::/64"
        );
    }

    #[test]
    fn a_full_address_evicts_its_oldest_waiting_client_but_never_a_logged_in_one() {
        let mut register = Register::default();
        let (a, b) = (key("192.0.2.1"), key("192.0.2.2"));
        let start = Instant::now();
        for n in 0..MAX_CLIENTS_PER_ADDRESS {
            assert_eq!(register.admit(a), Admission::Admit { evict: vec![] });
            register.add(n, a, start + Duration::from_millis(n as u64));
        }
        register.logged_in(&0);
        // The next from the same address displaces client 1, the oldest waiting.
        assert_eq!(register.admit(a), Admission::Admit { evict: vec![1] });
        register.add(100, a, start + Duration::from_secs(1));
        // Another address is not affected.
        assert_eq!(register.admit(b), Admission::Admit { evict: vec![] });
        // Once every client of the address has logged in, newcomers are refused.
        for n in (2..MAX_CLIENTS_PER_ADDRESS).chain([100]) {
            register.logged_in(&n);
        }
        assert_eq!(register.admit(a), Admission::Refuse);
        register.remove(&0);
        assert_eq!(register.admit(a), Admission::Admit { evict: vec![] });
    }

    #[test]
    fn the_total_is_bounded_across_addresses() {
        let mut register = Register::default();
        let now = Instant::now();
        for n in 0..MAX_CLIENTS {
            let address = key(&format!("10.0.{}.{}", n / 200, n % 200 + 1));
            assert_eq!(register.admit(address), Admission::Admit { evict: vec![] });
            register.add(n, address, now + Duration::from_millis(n as u64));
        }
        assert_eq!(
            register.admit(key("192.0.2.9")),
            Admission::Admit { evict: vec![0] }
        );
        register.add(100, key("192.0.2.9"), now + Duration::from_secs(1));
        for n in (1..MAX_CLIENTS).chain([100]) {
            register.logged_in(&n);
        }
        assert_eq!(register.admit(key("192.0.2.9")), Admission::Refuse);
    }

    #[test]
    fn clients_that_do_not_log_in_in_time_or_idle_are_overdue() {
        let mut register = Register::default();
        let start = Instant::now();
        register.add(1, key("192.0.2.1"), start);
        register.add(2, key("192.0.2.1"), start);
        register.logged_in(&2);
        assert_eq!(
            register.overdue(start + LOGIN_TIMEOUT / 2),
            (vec![], vec![])
        );
        assert_eq!(register.overdue(start + LOGIN_TIMEOUT), (vec![1], vec![]));
        register.request(&2, start + IDLE_TIMEOUT);
        assert_eq!(
            register.overdue(start + IDLE_TIMEOUT * 3 / 2),
            (vec![], vec![])
        );
        assert_eq!(
            register.overdue(start + IDLE_TIMEOUT * 2),
            (vec![], vec![2])
        );
    }

    #[test]
    fn wrong_passwords_disconnect_and_drain_the_address_budget() {
        let mut register = Register::default();
        let start = Instant::now();
        let a = key("192.0.2.1");
        register.add(1, a, start);
        assert!(!register.wrong_password(&1, start));
        assert!(!register.wrong_password(&1, start));
        assert!(
            register.wrong_password(&1, start),
            "the third wrong password on one connection"
        );
        assert!(
            !register.may_try(&1, start),
            "a closing client is not checked"
        );
        // New connections from the address share its budget: two more wrong
        // passwords empty it, after which nothing is checked until it refills.
        register.add(2, a, start);
        assert!(register.may_try(&2, start));
        assert!(!register.wrong_password(&2, start));
        assert!(register.wrong_password(&2, start), "the budget is empty");
        register.add(3, a, start);
        assert!(!register.may_try(&3, start));
        assert!(register.may_try(&3, start + PASSWORD_REFILL));
        // Another address has its own budget.
        register.add(4, key("192.0.2.2"), start);
        assert!(register.may_try(&4, start));
    }
}
