//! OData paging: the items of `value` arrays, following `@odata.nextLink` to the end.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::{Stream, StreamExt as _};
use serde::de::DeserializeOwned;
use serde::Deserialize;

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

/// The items of a paged collection, as a [`Stream`]; see [`DownstreamClient::paged`].
///
/// Pages are fetched one at a time, when the items of the previous one have been
/// consumed. The stream ends after the last page, or after the first error.
#[must_use = "streams do nothing unless polled"]
pub struct Paged<T> {
    client: DownstreamClient,
    items: VecDeque<T>,
    /// The URL of the page being fetched, or to fetch next.
    current: Option<String>,
    fetching: Option<PageFuture<T>>,
}

// No field is structurally pinned: the page future is boxed.
impl<T> Unpin for Paged<T> {}

impl<T> fmt::Debug for Paged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paged")
            .field("base", &self.client.base_url())
            .field("buffered", &self.items.len())
            .field("fetching", &self.fetching.is_some())
            .field("more", &self.current.is_some())
            .finish()
    }
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
                let current = this.current.take();
                match page {
                    Ok(page) => {
                        if page.next_link.is_some() && page.next_link == current {
                            return Poll::Ready(Some(Err(DownstreamError::Decode(
                                "@odata.nextLink points to the page it is on".into(),
                            ))));
                        }
                        this.items = page.value.into();
                        this.current = page.next_link;
                        continue;
                    }
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            let Some(url) = this.current.clone() else {
                return Poll::Ready(None);
            };
            let client = this.client.clone();
            this.fetching = Some(Box::pin(async move { client.get::<Page<T>>(&url).await }));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let more = self.current.is_some() || self.fetching.is_some();
        (self.items.len(), (!more).then_some(self.items.len()))
    }
}

impl DownstreamClient {
    /// The items of the collection at `path`: each page's `value` array, following the
    /// whole `@odata.nextLink` URL until a page has none.
    ///
    /// A `nextLink` outside the base's origin ends the stream with
    /// [`DownstreamError::ForeignUrl`]; each page is retried like any other call.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt as _;
    /// # async fn run(graph: axum_obo::GraphClient) -> Result<(), axum_obo::DownstreamError> {
    /// let mut users = graph.paged::<serde_json::Value>("users?$select=id,displayName&$top=100");
    /// while let Some(user) = users.try_next().await? {
    ///     println!("{}", user["displayName"]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn paged<T: DeserializeOwned + Send + 'static>(&self, path: &str) -> Paged<T> {
        Paged {
            client: self.clone(),
            items: VecDeque::new(),
            current: Some(path.to_owned()),
            fetching: None,
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
