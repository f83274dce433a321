//! The lab's certificates and keys, made with the openssl command-line tool: a CA, the API
//! server's serving certificate, an admin client certificate (group system:masters), the
//! service-account signing key; and the admin kubeconfig that uses them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd;
use crate::error::Result;
use crate::state::{Paths, write_file};
use crate::topology::{API_ADDR4, APISERVER_PORT};

/// Files under `.lab/pki/`.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub apiserver_cert: PathBuf,
    pub apiserver_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

impl Pki {
    pub fn at(paths: &Paths) -> Pki {
        let d = paths.pki();
        Pki {
            ca_cert: d.join("ca.crt"),
            ca_key: d.join("ca.key"),
            apiserver_cert: d.join("apiserver.crt"),
            apiserver_key: d.join("apiserver.key"),
            admin_cert: d.join("admin.crt"),
            admin_key: d.join("admin.key"),
            sa_key: d.join("sa.key"),
            sa_pub: d.join("sa.pub"),
        }
    }
}

/// The API server as the root namespace reaches it (the user's kubectl, tests, controller).
pub fn apiserver_url(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// The API server as the nodes reach it (agents, speakers): through `lab apiproxy`.
pub fn apiserver_url_from_nodes() -> String {
    format!("https://{API_ADDR4}:{APISERVER_PORT}")
}

fn ec_key(path: &Path) -> Result<()> {
    cmd::run(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(path),
    )
    .map(drop)
}

/// Signs a certificate for `key`; `signer` `None` makes it self-signed.
fn certificate(
    dir: &Path,
    name: &str,
    subject: &str,
    key: &Path,
    extensions: &str,
    signer: Option<(&Path, &Path)>,
) -> Result<PathBuf> {
    let config = dir.join(format!("{name}.cnf"));
    write_file(
        &config,
        &format!("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n[ext]\n{extensions}"),
    )?;
    let out = dir.join(format!("{name}.crt"));
    let mut c = Command::new("openssl");
    c.args(["req", "-x509", "-new", "-config"])
        .arg(&config)
        .args([
            "-extensions",
            "ext",
            "-days",
            "3650",
            "-subj",
            subject,
            "-key",
        ])
        .arg(key)
        .arg("-out")
        .arg(&out);
    if let Some((ca_cert, ca_key)) = signer {
        c.arg("-CA").arg(ca_cert).arg("-CAkey").arg(ca_key);
    }
    cmd::run(&mut c)?;
    Ok(out)
}

/// Creates every key and certificate, `.lab/kubeconfig` and `.lab/kubeconfig-node`.
pub fn create(paths: &Paths, apiserver_port: u16) -> Result<Pki> {
    let pki = Pki::at(paths);
    let dir = paths.pki();
    std::fs::create_dir_all(&dir).map_err(|source| crate::error::LabError::WriteFile {
        path: dir.clone(),
        source,
    })?;
    for key in [&pki.ca_key, &pki.apiserver_key, &pki.admin_key, &pki.sa_key] {
        ec_key(key)?;
    }
    cmd::run(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&pki.sa_key)
            .arg("-out")
            .arg(&pki.sa_pub),
    )?;
    certificate(
        &dir,
        "ca",
        "/CN=ferrolb-lab-ca",
        &pki.ca_key,
        "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
        None,
    )?;
    let ca = Some((pki.ca_cert.as_path(), pki.ca_key.as_path()));
    let first_cluster_ip = crate::topology::CLUSTER_IPS4
        .hosts()
        .next()
        .map(|ip| format!(",IP:{ip}"))
        .unwrap_or_default();
    certificate(
        &dir,
        "apiserver",
        "/CN=kube-apiserver",
        &pki.apiserver_key,
        &format!(
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = serverAuth\nauthorityKeyIdentifier = keyid\n\
             subjectAltName = IP:{API_ADDR4},IP:127.0.0.1{first_cluster_ip},DNS:localhost,DNS:kubernetes,\
             DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
        ),
        ca,
    )?;
    certificate(
        &dir,
        "admin",
        "/O=system:masters/CN=lab-admin",
        &pki.admin_key,
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = clientAuth\nauthorityKeyIdentifier = keyid\n",
        ca,
    )?;
    write_file(
        &paths.kubeconfig(),
        &kubeconfig(&pki, &apiserver_url(apiserver_port)),
    )?;
    write_file(
        &paths.node_kubeconfig(),
        &kubeconfig(&pki, &apiserver_url_from_nodes()),
    )?;
    Ok(pki)
}

fn kubeconfig(pki: &Pki, server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ferrolb-lab
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: lab-admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: ferrolb-lab
  context:
    cluster: ferrolb-lab
    user: lab-admin
    namespace: default
current-context: ferrolb-lab
",
        ca = pki.ca_cert.display(),
        cert = pki.admin_cert.display(),
        key = pki.admin_key.display(),
    )
}
