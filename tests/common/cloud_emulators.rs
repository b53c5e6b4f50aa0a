//! Azurite, the Azure Blob Storage emulator, on loopback, for the `az://` warehouse tests (npm,
//! in tests/js, installed by `.ci/test`). Without it these tests fail; they do not skip.
//!
//! No Google Cloud Storage emulator from the registries answers object_store's XML API
//! (gcp-storage-emulator sends no ETag and cannot list), so `gs://` has no test here.

use std::process::{Command, Stdio};

use super::process::{wait_for_line, KilledOnDrop};

/// Azurite's well-known development account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A child process killed with the test.
pub struct Emulator {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    _child: KilledOnDrop,
}

impl Emulator {
    /// Azurite's blob service, in memory, without telemetry (nothing leaves loopback).
    pub fn azurite() -> Emulator {
        let program = super::repo_root().join("tests/js/node_modules/.bin/azurite-blob");
        let mut child = Command::new(&program)
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts ({e}); .ci/test installs it with npm ci in tests/js", program.display()));
        // "Azurite Blob service successfully listens on http://127.0.0.1:PORT"
        let stdout = child.stdout.take().expect("stdout");
        let endpoint = wait_for_line(stdout, "successfully listens on ", "Azurite");
        Emulator { endpoint, _child: KilledOnDrop(child) }
    }

    /// The environment object_store's Azure client needs to reach this Azurite.
    pub fn azurite_env(&self) -> Vec<(&'static str, String)> {
        vec![("AZURE_STORAGE_USE_EMULATOR", "true".into()), ("AZURITE_BLOB_STORAGE_URL", self.endpoint.clone())]
    }

    /// An account SAS token for Azurite's account that may read, write, list and delete for an
    /// hour (made by Azure's SDK for Python, signed with the account key).
    pub fn account_sas(&self) -> String {
        let script = "import sys, datetime\nfrom azure.storage.blob import generate_account_sas, ResourceTypes, AccountSasPermissions\n\
                      expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)\n\
                      print(generate_account_sas(sys.argv[1], sys.argv[2], ResourceTypes(service=True, container=True, object=True), \
                      AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True), expiry))";
        let out = Command::new(super::python()).args(["-c", script, AZURITE_ACCOUNT, AZURITE_KEY]).output().unwrap();
        assert!(out.status.success(), "making a SAS token: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Creates `container` (Azure's SDK for Python signs the request with the account key).
    pub fn create_container(&self, container: &str) {
        let connection = format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={}/{AZURITE_ACCOUNT};",
            self.endpoint
        );
        let script = "import sys\nfrom azure.storage.blob import BlobServiceClient\n\
                      BlobServiceClient.from_connection_string(sys.argv[1]).create_container(sys.argv[2])";
        let out = Command::new(super::python()).args(["-c", script, &connection, container]).output().unwrap();
        assert!(out.status.success(), "creating container {container}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
