//! Fault injection for tests: an OpenDAL layer, below the retry layer, that
//! fails a share of requests transiently, delays every request, or makes the
//! service vanish after a number of requests.
//!
//! Enabled only by `CAIRN_TEST_FAULTS`, e.g. `fail=0.1,latency_ms=3` or
//! `gone_after=40`; inert (not even installed) otherwise. A transient fault
//! is raised before the request reaches the service, like a dropped
//! connection or a 503, so a retry sees the service unchanged. `fail=0.1`
//! fails every tenth request: deterministic, so a test knows how many
//! faults it injected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opendal::raw::*;
use opendal::*;

/// What to inject, parsed from `CAIRN_TEST_FAULTS`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultPlan {
    /// Share of requests that fail transiently (0.0 to 1.0): every
    /// (1/fail)-th request.
    pub fail: f64,
    /// Delay before every request.
    pub latency: Duration,
    /// After this many requests every request fails for good.
    pub gone_after: Option<u64>,
}

impl FaultPlan {
    /// The plan in `CAIRN_TEST_FAULTS`, if set and valid.
    pub fn from_env() -> Option<Self> {
        Self::parse(&std::env::var("CAIRN_TEST_FAULTS").ok()?)
    }

    /// Parses `key=value` pairs separated by commas; None if any is invalid.
    pub fn parse(s: &str) -> Option<Self> {
        let mut plan = Self::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=')?;
            match k.trim() {
                "fail" => plan.fail = v.parse().ok().filter(|f: &f64| (0.0..=1.0).contains(f))?,
                "latency_ms" => plan.latency = Duration::from_millis(v.parse().ok()?),
                "gone_after" => plan.gone_after = Some(v.parse().ok()?),
                _ => return None,
            }
        }
        Some(plan)
    }
}

/// The layer; see the module header.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    plan: FaultPlan,
    requests: AtomicU64,
}

impl FaultLayer {
    /// A layer carrying out `plan`.
    pub fn new(plan: FaultPlan) -> Self {
        Self { state: Arc::new(State { plan, requests: AtomicU64::new(0) }) }
    }
}

impl State {
    /// Called at the start of every request: delays it, then maybe fails it.
    async fn inject(&self, op: &'static str) -> Result<()> {
        if !self.plan.latency.is_zero() {
            tokio::time::sleep(self.plan.latency).await;
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        if self.plan.gone_after.is_some_and(|limit| n >= limit) {
            return Err(Error::new(ErrorKind::Unexpected, "injected fault: the service is gone").with_operation(op));
        }
        let every = if self.plan.fail > 0.0 { (1.0 / self.plan.fail).round().max(1.0) as u64 } else { 0 };
        if every > 0 && (n + 1).is_multiple_of(every) {
            // Tests count these lines to know the faults happened.
            eprintln!("cairn: injected transient fault ({op})");
            return Err(Error::new(ErrorKind::Unexpected, "injected transient fault")
                .with_operation(op)
                .set_temporary());
        }
        Ok(())
    }
}

impl Layer for FaultLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(FaultService { inner, state: self.state.clone() })
    }
}

#[doc(hidden)]
#[derive(Debug)]
pub struct FaultService {
    inner: Servicer,
    state: Arc<State>,
}

#[doc(hidden)]
pub struct Faulty<R> {
    inner: R,
    state: Arc<State>,
    /// For listers: one request per listing, not one per entry.
    started: bool,
}

impl FaultService {
    fn wrap<R>(&self, inner: R) -> Faulty<R> {
        Faulty { inner, state: self.state.clone(), started: false }
    }
}

impl Service for FaultService {
    type Reader = Faulty<oio::Reader>;
    type Writer = Faulty<oio::Writer>;
    type Lister = Faulty<oio::Lister>;
    type Deleter = Faulty<oio::Deleter>;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(&self, ctx: &OperationContext, path: &str, args: OpCreateDir) -> Result<RpCreateDir> {
        self.state.inject("create_dir").await?;
        self.inner.create_dir(ctx, path, args).await
    }

    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> Result<RpStat> {
        self.state.inject("stat").await?;
        self.inner.stat(ctx, path, args).await
    }

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<Self::Reader> {
        self.inner.read(ctx, path, args).map(|r| self.wrap(r))
    }

    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> Result<Self::Writer> {
        self.inner.write(ctx, path, args).map(|w| self.wrap(w))
    }

    fn delete(&self, ctx: &OperationContext) -> Result<Self::Deleter> {
        self.inner.delete(ctx).map(|d| self.wrap(d))
    }

    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> Result<Self::Lister> {
        self.inner.list(ctx, path, args).map(|l| self.wrap(l))
    }

    fn copy(&self, ctx: &OperationContext, from: &str, to: &str, args: OpCopy) -> Result<Self::Copier> {
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(&self, ctx: &OperationContext, to: &str, args: OpCompose) -> Result<Self::Composer> {
        self.inner.compose(ctx, to, args)
    }

    async fn rename(&self, ctx: &OperationContext, from: &str, to: &str, args: OpRename) -> Result<RpRename> {
        self.state.inject("rename").await?;
        self.inner.rename(ctx, from, to, args).await
    }

    async fn presign(&self, ctx: &OperationContext, path: &str, args: OpPresign) -> Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

impl<R: oio::Read> oio::Read for Faulty<R> {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        self.state.inject("read").await?;
        self.inner.open(range).await
    }

    async fn read(&self, range: BytesRange) -> Result<(RpRead, Buffer)> {
        self.state.inject("read").await?;
        self.inner.read(range).await
    }
}

impl<W: oio::Write> oio::Write for Faulty<W> {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        self.state.inject("write").await?;
        self.inner.write(bs).await
    }

    async fn copy_from(&mut self, path: &str, args: OpRead, range: BytesRange) -> Result<()> {
        self.inner.copy_from(path, args, range).await
    }

    async fn close(&mut self) -> Result<Metadata> {
        self.state.inject("write").await?;
        self.inner.close().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

impl<L: oio::List> oio::List for Faulty<L> {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        if !self.started {
            self.state.inject("list").await?;
            self.started = true;
        }
        self.inner.next().await
    }
}

impl<D: oio::Delete> oio::Delete for Faulty<D> {
    async fn delete(&mut self, path: &str, args: OpDelete) -> Result<()> {
        self.state.inject("delete").await?;
        self.inner.delete(path, args).await
    }

    async fn close(&mut self) -> Result<()> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_and_bad_ones_are_refused() {
        let p = FaultPlan::parse("fail=0.1,latency_ms=3").unwrap();
        assert_eq!(p.fail, 0.1);
        assert_eq!(p.latency, Duration::from_millis(3));
        assert_eq!(FaultPlan::parse("gone_after=7").unwrap().gone_after, Some(7));
        assert!(FaultPlan::parse("fail=2").is_none());
        assert!(FaultPlan::parse("explode=1").is_none());
    }
}
