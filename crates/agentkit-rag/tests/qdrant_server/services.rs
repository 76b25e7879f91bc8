//! Qdrant's `Collections` and `Points` gRPC services (qdrant-client's generated tonic stubs) on
//! the in-memory [`Db`]: the RPCs `QdrantStore` sends are served, every other one answers
//! `Unimplemented`. Each RPC first goes through the [`Control`] (recorded, maybe failed), and
//! every read or delete through the isolation guard.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use qdrant_client::qdrant as q;
use qdrant_client::qdrant::collections_server::Collections;
use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::points_server::Points;
use tonic::{Request, Response, Status};

use super::Control;
use super::engine::Db;

/// Both services over one database.
#[derive(Clone)]
pub struct Service {
    db: Arc<Mutex<Db>>,
    control: Control,
}

impl Service {
    pub fn new(control: Control) -> Self {
        Self {
            db: Arc::new(Mutex::new(Db::default())),
            control,
        }
    }

    fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An RPC this server does not serve (recorded, and failed if a fault says so first).
    fn unimplemented(&self, rpc: &'static str) -> Status {
        match self.control.enter(rpc) {
            Err(fault) => fault,
            Ok(()) => Status::unimplemented(format!("`{rpc}` is not served by the test server")),
        }
    }
}

/// The isolation guard: a read or delete whose filter has no `must` keyword condition on both
/// `tenant` and `agent` is refused, so a store that forgets the scope anywhere fails loudly.
fn guard(rpc: &str, filter: Option<&q::Filter>) -> Result<(), Status> {
    let scoped = |field: &str| {
        filter.is_some_and(|f| {
            f.must.iter().any(|c| match &c.condition_one_of {
                Some(ConditionOneOf::Field(fc)) => {
                    fc.key == field
                        && matches!(
                            fc.r#match.as_ref().and_then(|m| m.match_value.as_ref()),
                            Some(MatchValue::Keyword(_))
                        )
                }
                _ => false,
            })
        })
    };
    if scoped("tenant") && scoped("agent") {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "isolation guard: `{rpc}` without a `must` keyword condition on both `tenant` and \
             `agent`"
        )))
    }
}

fn update_result(operation: u64, wait: Option<bool>) -> q::PointsOperationResponse {
    let status = if wait == Some(true) {
        q::UpdateStatus::Completed
    } else {
        q::UpdateStatus::Acknowledged
    };
    q::PointsOperationResponse {
        result: Some(q::UpdateResult {
            operation_id: Some(operation),
            status: status as i32,
        }),
        ..q::PointsOperationResponse::default()
    }
}

/// One service impl: the RPCs written out, then the ones answered `Unimplemented`.
macro_rules! service {
    (
        impl $trait:ident as $prefix:literal { $($served:tt)* }
        unimplemented { $($name:ident: $req:ident => $resp:ident,)* }
    ) => {
        #[tonic::async_trait]
        impl $trait for Service {
            $($served)*
            $(
                async fn $name(
                    &self,
                    _request: Request<q::$req>,
                ) -> Result<Response<q::$resp>, Status> {
                    Err(self.unimplemented(concat!($prefix, ".", stringify!($name))))
                }
            )*
        }
    };
}

service! {
    impl Collections as "collections" {
        async fn get(
            &self,
            request: Request<q::GetCollectionInfoRequest>,
        ) -> Result<Response<q::GetCollectionInfoResponse>, Status> {
            self.control.enter("collection_info")?;
            let info = self.db().info(&request.get_ref().collection_name)?;
            Ok(Response::new(q::GetCollectionInfoResponse {
                result: Some(info),
                time: 0.0,
            }))
        }

        async fn collection_exists(
            &self,
            request: Request<q::CollectionExistsRequest>,
        ) -> Result<Response<q::CollectionExistsResponse>, Status> {
            self.control.enter("collection_exists")?;
            let exists = self.db().exists(&request.get_ref().collection_name);
            Ok(Response::new(q::CollectionExistsResponse {
                result: Some(q::CollectionExists { exists }),
                time: 0.0,
            }))
        }

        async fn create(
            &self,
            request: Request<q::CreateCollection>,
        ) -> Result<Response<q::CollectionOperationResponse>, Status> {
            self.control.enter("create_collection")?;
            self.db().create(request.into_inner())?;
            Ok(Response::new(q::CollectionOperationResponse {
                result: true,
                time: 0.0,
            }))
        }
    }
    unimplemented {
        list: ListCollectionsRequest => ListCollectionsResponse,
        update: UpdateCollection => CollectionOperationResponse,
        delete: DeleteCollection => CollectionOperationResponse,
        update_aliases: ChangeAliases => CollectionOperationResponse,
        list_collection_aliases: ListCollectionAliasesRequest => ListAliasesResponse,
        list_aliases: ListAliasesRequest => ListAliasesResponse,
        collection_cluster_info: CollectionClusterInfoRequest => CollectionClusterInfoResponse,
        update_collection_cluster_setup:
            UpdateCollectionClusterSetupRequest => UpdateCollectionClusterSetupResponse,
        create_shard_key: CreateShardKeyRequest => CreateShardKeyResponse,
        delete_shard_key: DeleteShardKeyRequest => DeleteShardKeyResponse,
        list_shard_keys: ListShardKeysRequest => ListShardKeysResponse,
    }
}

service! {
    impl Points as "points" {
        async fn upsert(
            &self,
            request: Request<q::UpsertPoints>,
        ) -> Result<Response<q::PointsOperationResponse>, Status> {
            self.control.enter("upsert")?;
            let request = request.into_inner();
            let wait = request.wait;
            let operation = self.db().upsert(request)?;
            Ok(Response::new(update_result(operation, wait)))
        }

        async fn delete(
            &self,
            request: Request<q::DeletePoints>,
        ) -> Result<Response<q::PointsOperationResponse>, Status> {
            self.control.enter("delete")?;
            let request = request.into_inner();
            let filter = match request
                .points
                .as_ref()
                .and_then(|p| p.points_selector_one_of.as_ref())
            {
                Some(PointsSelectorOneOf::Filter(f)) => Some(f),
                _ => None,
            };
            guard("delete", filter)?;
            let wait = request.wait;
            let operation = self.db().delete(request)?;
            Ok(Response::new(update_result(operation, wait)))
        }

        async fn create_field_index(
            &self,
            request: Request<q::CreateFieldIndexCollection>,
        ) -> Result<Response<q::PointsOperationResponse>, Status> {
            self.control.enter("create_field_index")?;
            let request = request.into_inner();
            let wait = request.wait;
            let operation = self.db().create_index(request)?;
            Ok(Response::new(update_result(operation, wait)))
        }

        async fn count(
            &self,
            request: Request<q::CountPoints>,
        ) -> Result<Response<q::CountResponse>, Status> {
            self.control.enter("count")?;
            let request = request.get_ref();
            guard("count", request.filter.as_ref())?;
            let count = self
                .db()
                .count(&request.collection_name, request.filter.as_ref())?;
            Ok(Response::new(q::CountResponse {
                result: Some(q::CountResult { count }),
                ..q::CountResponse::default()
            }))
        }

        async fn scroll(
            &self,
            request: Request<q::ScrollPoints>,
        ) -> Result<Response<q::ScrollResponse>, Status> {
            self.control.enter("scroll")?;
            let request = request.get_ref();
            guard("scroll", request.filter.as_ref())?;
            let (result, next_page_offset) = self.db().scroll(request)?;
            Ok(Response::new(q::ScrollResponse {
                next_page_offset,
                result,
                ..q::ScrollResponse::default()
            }))
        }

        async fn query(
            &self,
            request: Request<q::QueryPoints>,
        ) -> Result<Response<q::QueryResponse>, Status> {
            self.control.enter("query")?;
            let request = request.get_ref();
            guard("query", request.filter.as_ref())?;
            let result = self.db().query(request)?;
            if request.params.as_ref().and_then(|p| p.exact) == Some(true) {
                self.control.note_exact_query();
            }
            Ok(Response::new(q::QueryResponse {
                result,
                ..q::QueryResponse::default()
            }))
        }
    }
    unimplemented {
        get: GetPoints => GetResponse,
        update_vectors: UpdatePointVectors => PointsOperationResponse,
        delete_vectors: DeletePointVectors => PointsOperationResponse,
        set_payload: SetPayloadPoints => PointsOperationResponse,
        overwrite_payload: SetPayloadPoints => PointsOperationResponse,
        delete_payload: DeletePayloadPoints => PointsOperationResponse,
        clear_payload: ClearPayloadPoints => PointsOperationResponse,
        delete_field_index: DeleteFieldIndexCollection => PointsOperationResponse,
        create_vector_name: CreateVectorNameRequest => PointsOperationResponse,
        delete_vector_name: DeleteVectorNameRequest => PointsOperationResponse,
        search: SearchPoints => SearchResponse,
        search_batch: SearchBatchPoints => SearchBatchResponse,
        search_groups: SearchPointGroups => SearchGroupsResponse,
        recommend: RecommendPoints => RecommendResponse,
        recommend_batch: RecommendBatchPoints => RecommendBatchResponse,
        recommend_groups: RecommendPointGroups => RecommendGroupsResponse,
        discover: DiscoverPoints => DiscoverResponse,
        discover_batch: DiscoverBatchPoints => DiscoverBatchResponse,
        update_batch: UpdateBatchPoints => UpdateBatchResponse,
        query_batch: QueryBatchPoints => QueryBatchResponse,
        query_groups: QueryPointGroups => QueryGroupsResponse,
        facet: FacetCounts => FacetResponse,
        search_matrix_pairs: SearchMatrixPoints => SearchMatrixPairsResponse,
        search_matrix_offsets: SearchMatrixPoints => SearchMatrixOffsetsResponse,
    }
}
