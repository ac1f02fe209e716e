//! Keys and addresses: `SecretKey`, `Address`, `generate_keypair`.

use crate::errors;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::str::FromStr;
use tb_primitives::{Address, SecretKey};

/// The longest key file `SecretKey.from_file` reads (a hex seed is 65 bytes, a PEM
/// document a few hundred).
const KEY_FILE_BYTES_MAX: u64 = tb_primitives::PEM_BYTES_MAX as u64;

/// An Ed25519 signing key. Its `repr` shows the address, never the secret.
#[pyclass(name = "SecretKey", module = "the_block", frozen)]
#[derive(Clone)]
pub struct PySecretKey(pub SecretKey);

#[pymethods]
impl PySecretKey {
    /// A fresh key from the operating system's random source.
    #[staticmethod]
    fn generate() -> PySecretKey {
        PySecretKey(SecretKey::generate())
    }

    /// The key of a 32-byte seed.
    #[staticmethod]
    fn from_seed(seed: &[u8]) -> PyResult<PySecretKey> {
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| errors::key(format!("a seed is 32 bytes, this one is {}", seed.len())))?;
        Ok(PySecretKey(SecretKey::from_seed(seed)))
    }

    /// The key of a seed written as 64 hex digits (the node's and tb-cli's key files).
    #[staticmethod]
    fn from_seed_hex(text: &str) -> PyResult<PySecretKey> {
        SecretKey::from_seed_hex(text.trim())
            .map(PySecretKey)
            .map_err(|e| errors::key(format!("seed: {e}")))
    }

    /// The key of a PKCS#8 PEM document (`openssl genpkey -algorithm ed25519`).
    #[staticmethod]
    fn from_pem(pem: &str) -> PyResult<PySecretKey> {
        SecretKey::from_pkcs8_pem(pem)
            .map(PySecretKey)
            .map_err(errors::key)
    }

    /// A key file: a hex seed (`tb-cli key new`, the devnet's `dev-keys/*.key`) or a
    /// PKCS#8 PEM document.
    #[staticmethod]
    fn from_file(path: std::path::PathBuf) -> PyResult<PySecretKey> {
        use std::io::Read as _;
        let f = std::fs::File::open(&path)
            .map_err(|e| errors::key(format!("{}: {e}", path.display())))?;
        let mut text = String::new();
        f.take(KEY_FILE_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .map_err(|e| errors::key(format!("{}: {e}", path.display())))?;
        if text.len() as u64 > KEY_FILE_BYTES_MAX {
            return Err(errors::key(format!(
                "{}: above {KEY_FILE_BYTES_MAX} bytes, not a key file",
                path.display()
            )));
        }
        let read = if text.contains("-----BEGIN") {
            SecretKey::from_pkcs8_pem(&text).map_err(|e| e.to_string())
        } else {
            SecretKey::from_seed_hex(text.trim())
        };
        read.map(PySecretKey)
            .map_err(|e| errors::key(format!("{}: {e}", path.display())))
    }

    /// The devnet's deterministic key of `name` (`devnet-alice`, `devnet-provider`, …).
    #[staticmethod]
    fn dev(name: &str) -> PySecretKey {
        PySecretKey(SecretKey::dev(name))
    }

    /// The 32-byte seed.
    fn seed<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.seed())
    }

    /// The seed as 64 hex digits (the key-file format).
    fn seed_hex(&self) -> String {
        hex::encode(self.0.seed())
    }

    /// The key as a PKCS#8 PEM document.
    fn to_pem(&self) -> String {
        self.0.to_pkcs8_pem()
    }

    /// The address (the public key).
    #[getter]
    fn address(&self) -> PyAddress {
        PyAddress(self.0.address())
    }

    fn __repr__(&self) -> String {
        format!("SecretKey(address={})", self.0.address())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PySecretKey>()
            .is_ok_and(|o| o.get().0.seed() == self.0.seed())
    }
}

/// An account address: the 32-byte Ed25519 public key. `str()` is the text form
/// `tb1…` (with its checksum); `hex()` the 64 hex digits of the key.
#[pyclass(name = "Address", module = "the_block", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyAddress(pub Address);

#[pymethods]
impl PyAddress {
    /// An address from its text form (`tb1…`) or 64 hex digits.
    #[new]
    fn new(text: &str) -> PyResult<PyAddress> {
        parse_address(text).map(PyAddress)
    }

    /// An address from the 32 bytes of the public key.
    #[staticmethod]
    fn from_bytes(b: &[u8]) -> PyResult<PyAddress> {
        let key: [u8; 32] = b
            .try_into()
            .map_err(|_| errors::key(format!("an address is 32 bytes, got {}", b.len())))?;
        Ok(PyAddress(Address(key)))
    }

    /// The key's 64 hex digits.
    fn hex(&self) -> String {
        hex::encode(self.0 .0)
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0 .0)
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Address('{}')", self.0)
    }
}

/// `tb1…` or 64 hex digits.
pub fn parse_address(text: &str) -> PyResult<Address> {
    let t = text.trim();
    if t.len() == 64 {
        let mut key = [0u8; 32];
        hex::decode_to_slice(t, &mut key)
            .map_err(|e| errors::key(format!("address {t:?}: {e}")))?;
        return Ok(Address(key));
    }
    Address::from_str(t).map_err(|e| errors::key(format!("address {t:?}: {e}")))
}

/// An `Address` or its text: what every function taking an address accepts.
pub struct AddressArg(pub Address);

impl<'a, 'py> FromPyObject<'a, 'py> for AddressArg {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(a) = ob.cast::<PyAddress>() {
            return Ok(AddressArg(a.get().0));
        }
        if let Ok(s) = ob.extract::<String>() {
            return parse_address(&s).map(AddressArg);
        }
        Err(errors::key(format!(
            "expected an Address or its text (tb1…), got {}",
            ob.get_type()
        )))
    }
}

/// A fresh key and its address.
#[pyfunction]
fn generate_keypair() -> (PySecretKey, PyAddress) {
    let k = SecretKey::generate();
    let a = k.address();
    (PySecretKey(k), PyAddress(a))
}

/// Whether `address` is a valid Ed25519 public key (a sender a signature can verify
/// for), checked without a node.
#[pyfunction]
fn is_valid_address(address: AddressArg) -> bool {
    address.0.verifying_key().is_ok()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySecretKey>()?;
    m.add_class::<PyAddress>()?;
    m.add_function(wrap_pyfunction!(generate_keypair, m)?)?;
    m.add_function(wrap_pyfunction!(is_valid_address, m)?)?;
    Ok(())
}
