//! OData paging: the items of `value` arrays, following `@odata.nextLink` to the end.
//!
//! Every page is a request carrying the user's token, so a stream never fetches the
//! same page twice and never fetches more than the client's
//! [`max_pages`](DownstreamClient::max_pages): a `nextLink` to a page already fetched
//! (`A → B → A`, compared as resolved, normalized URLs) ends it with
//! [`DownstreamError::PagingLoop`], one past the cap with
//! [`DownstreamError::TooManyPages`]. The items of the page that carried the bad link
//! are yielded first.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::{Stream, StreamExt as _};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use super::client::DownstreamClient;
use super::error::DownstreamError;

/// One page of an OData collection.
#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

type PageFuture<T> = Pin<Box<dyn Future<Output = Result<Page<T>, DownstreamError>> + Send>>;

/// What comes after the buffered items.
enum Next {
    /// This page, not fetched yet.
    Fetch(Url),
    /// This error, then the end.
    Fail(DownstreamError),
    /// The end.
    Done,
}

/// The items of a paged collection, as a [`Stream`]; see [`DownstreamClient::paged`].
///
/// Pages are fetched one at a time, when the items of the previous one have been
/// consumed. The stream ends after the last page, or after the first error.
#[must_use = "streams do nothing unless polled"]
pub struct Paged<T> {
    client: DownstreamClient,
    items: VecDeque<T>,
    next: Next,
    fetching: Option<PageFuture<T>>,
    /// The (normalized) URLs of the pages fetched or being fetched.
    visited: HashSet<String>,
}

// No field is structurally pinned: the page future is boxed.
impl<T> Unpin for Paged<T> {}

impl<T> fmt::Debug for Paged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paged")
            .field("base", &self.client.base_url())
            .field("buffered", &self.items.len())
            .field("fetching", &self.fetching.is_some())
            .field("pages", &self.visited.len())
            .field("more", &!matches!(self.next, Next::Done))
            .finish()
    }
}

impl<T> Paged<T> {
    /// What follows a page whose `@odata.nextLink` is `link`.
    fn after(&self, link: Option<&str>) -> Next {
        let Some(link) = link else {
            return Next::Done;
        };
        let url = match self.client.url(link) {
            Ok(url) => url,
            Err(e) => return Next::Fail(e),
        };
        if self.visited.contains(&page_key(&url)) {
            tracing::warn!(
                pages = self.visited.len(),
                "@odata.nextLink points to a page already fetched; stopping"
            );
            return Next::Fail(DownstreamError::PagingLoop);
        }
        let max_pages = self.client.max_pages();
        if self.visited.len() >= max_pages {
            tracing::warn!(
                max_pages,
                "paged collection has more pages than allowed; stopping"
            );
            return Next::Fail(DownstreamError::TooManyPages { max_pages });
        }
        Next::Fetch(url)
    }
}

/// The URL as compared for loops: parsed (scheme and host lowercased, default port
/// dropped, dot segments resolved, percent-encoding normalized), without fragment.
fn page_key(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.into()
}

impl<T: DeserializeOwned + Send + 'static> Stream for Paged<T> {
    type Item = Result<T, DownstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.items.pop_front() {
                return Poll::Ready(Some(Ok(item)));
            }
            if let Some(fetching) = this.fetching.as_mut() {
                let page = ready!(fetching.as_mut().poll(cx));
                this.fetching = None;
                match page {
                    Ok(page) => {
                        this.next = this.after(page.next_link.as_deref());
                        this.items = page.value.into();
                        continue;
                    }
                    Err(e) => {
                        this.next = Next::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            match std::mem::replace(&mut this.next, Next::Done) {
                Next::Done => return Poll::Ready(None),
                Next::Fail(e) => return Poll::Ready(Some(Err(e))),
                Next::Fetch(url) => {
                    this.visited.insert(page_key(&url));
                    let client = this.client.clone();
                    this.fetching = Some(Box::pin(
                        async move { client.get_url::<Page<T>>(&url).await },
                    ));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let more = !matches!(self.next, Next::Done) || self.fetching.is_some();
        (self.items.len(), (!more).then_some(self.items.len()))
    }
}

impl DownstreamClient {
    /// The items of the collection at `path`: each page's `value` array, following the
    /// whole `@odata.nextLink` URL until a page has none.
    ///
    /// A `nextLink` outside the base's origin ends the stream with
    /// [`DownstreamError::ForeignUrl`], one to a page this stream already fetched with
    /// [`DownstreamError::PagingLoop`], and one past
    /// [`max_pages`](Self::with_max_pages) pages (default 1000) with
    /// [`DownstreamError::TooManyPages`]; each page is retried like any other call.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt as _;
    /// # async fn run(graph: axum_obo::downstream::GraphClient) -> Result<(), axum_obo::downstream::DownstreamError> {
    /// let mut users = graph.paged::<serde_json::Value>("users?$select=id,displayName&$top=100");
    /// while let Some(user) = users.try_next().await? {
    ///     println!("{}", user["displayName"]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn paged<T: DeserializeOwned + Send + 'static>(&self, path: &str) -> Paged<T> {
        let next = match self.url(path) {
            Ok(url) => Next::Fetch(url),
            Err(e) => Next::Fail(e),
        };
        Paged {
            client: self.clone(),
            items: VecDeque::new(),
            next,
            fetching: None,
            visited: HashSet::new(),
        }
    }

    /// All items of the collection at `path` (see [`paged`](Self::paged)), failing
    /// with [`DownstreamError::TooManyItems`] rather than holding more than `max_items`.
    pub async fn collect_all<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        max_items: usize,
    ) -> Result<Vec<T>, DownstreamError> {
        let mut pages = self.paged::<T>(path);
        let mut all = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item?;
            if all.len() == max_items {
                return Err(DownstreamError::TooManyItems { max_items });
            }
            all.push(item);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_keys_are_normalized() {
        let key = |s: &str| page_key(&Url::parse(s).unwrap());
        let a = key("https://graph.microsoft.com/v1.0/users?$skiptoken=a");
        for same in [
            "HTTPS://Graph.Microsoft.com:443/v1.0/users?$skiptoken=a",
            "https://graph.microsoft.com/v1.0/x/../users?$skiptoken=a",
            "https://graph.microsoft.com/v1.0/users?$skiptoken=a#frag",
        ] {
            assert_eq!(key(same), a, "{same}");
        }
        assert_ne!(
            key("https://graph.microsoft.com/v1.0/users?$skiptoken=b"),
            a
        );
    }
}
