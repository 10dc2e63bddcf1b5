//! Production store: an S3 bucket (or MinIO, R2, Ceph through `AWS_ENDPOINT_URL` and path-style
//! addressing) via aws-sdk-s3, with explicit timeouts and a bounded retry policy. Static keys in
//! the configuration win; without them, credentials come from AWS's standard chain (aws-config):
//! the environment, the shared config and credentials files with their profiles, web identity
//! (EKS IRSA), the container endpoint (ECS task roles, EKS Pod Identity) and the instance
//! metadata service, each refreshed before it expires. An empty region asks the chain too.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::Bytes;
use secrecy::ExposeSecret;

use super::{Blob, BlobKey, Listed, Storage, StorageError};
use crate::config::S3Config;

/// Keys per DeleteObjects call (the S3 maximum).
const DELETE_BATCH: usize = 1000;

/// A bucket.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
}

impl S3Storage {
    /// A client for the configured bucket. Nothing is contacted until the first call (the
    /// credential chain included: it is asked on the first request, and again before the
    /// credentials it gave expire).
    pub async fn connect(config: &S3Config) -> Self {
        let region = if config.region.is_empty() {
            let chain = aws_config::default_provider::region::DefaultRegionChain::builder().build();
            chain.region().await.unwrap_or_else(|| Region::new("us-east-1"))
        } else {
            Region::new(config.region.clone())
        };
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .operation_attempt_timeout(config.operation_timeout)
            .operation_timeout(config.operation_timeout * config.max_attempts)
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region.clone())
            .force_path_style(config.force_path_style)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts));
        if !config.endpoint.is_empty() {
            builder = builder.endpoint_url(&config.endpoint);
        }
        if let (false, Some(secret)) = (config.access_key_id.is_empty(), &config.secret_access_key) {
            builder = builder.credentials_provider(Credentials::new(
                &config.access_key_id,
                secret.expose_secret(),
                None,
                None,
                "imgedge-config",
            ));
        } else {
            let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                .region(region)
                .build()
                .await;
            builder = builder.credentials_provider(chain);
        }
        Self { client: Client::from_conf(builder.build()), bucket: config.bucket.clone() }
    }
}

/// Sorts an SDK failure: a missing key, an unreachable store, or anything else.
fn classify<E, R>(e: SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
    SdkError<E, R>: std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("NoSuchKey" | "NotFound") => StorageError::NotFound,
            Some("SlowDown" | "ServiceUnavailable" | "RequestTimeout") => StorageError::Unavailable(e.into()),
            _ => StorageError::Backend(e.into()),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StorageError::Unavailable(e.into())
        }
        _ => StorageError::Backend(e.into()),
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(&self, key: &BlobKey, bytes: Bytes, content_type: &str) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .body(bytes.into())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Blob, StorageError> {
        let out = self.client.get_object().bucket(&self.bucket).key(key.as_str()).send().await.map_err(classify)?;
        let len = out.content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        let stream = futures_util::stream::unfold(out.body, |mut body| async move {
            match body.next().await {
                Some(Ok(chunk)) => Some((Ok(chunk), body)),
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), body)),
                None => None,
            }
        });
        Ok(Blob { len, stream: Box::pin(stream) })
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), StorageError> {
        match self.client.delete_object().bucket(&self.bucket).key(key.as_str()).send().await.map_err(classify) {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StorageError> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for object in page.contents() {
                if let Some(key) = object.key().and_then(BlobKey::from_listing) {
                    let modified = object.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
                    keys.push(Listed { key, modified });
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn presign_get(
        &self,
        key: &BlobKey,
        ttl: Duration,
        content_type: &str,
    ) -> Result<Option<String>, StorageError> {
        let presigning = PresigningConfig::expires_in(ttl).map_err(|e| StorageError::Backend(e.into()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .response_content_type(content_type)
            .presigned(presigning)
            .await
            .map_err(classify)?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn size(&self, key: &BlobKey) -> Result<u64, StorageError> {
        let out = self.client.head_object().bucket(&self.bucket).key(key.as_str()).send().await.map_err(classify)?;
        Ok(out.content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(|e| match classify(e) {
            StorageError::NotFound => StorageError::Unavailable("the bucket does not exist".into()),
            other => other,
        })?;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        let keys = self.list(prefix).await?;
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|o| ObjectIdentifier::builder().key(o.key.as_str()).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageError::Backend(e.into()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::Backend(e.into()))?;
            let out =
                self.client.delete_objects().bucket(&self.bucket).delete(delete).send().await.map_err(classify)?;
            if let Some(failed) = out.errors().first() {
                return Err(StorageError::Backend(
                    format!("could not delete {}: {}", failed.key().unwrap_or("?"), failed.message().unwrap_or("?"))
                        .into(),
                ));
            }
        }
        Ok(keys.len())
    }
}
