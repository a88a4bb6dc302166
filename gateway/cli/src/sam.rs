//! `gerbang sam keygen`: a SAM key pair for a card reader. The private part goes to a file
//! for the reader (mode 0600); the public part is printed as the `[[sam]]` table Ditjen
//! adds to the Pengguna's PKS file. Gerbang itself only ever holds the public part.

use std::path::Path;

use anyhow::{Context as _, Result};
use gerbang_sam::ReaderKey;

/// Generates the key pair, writes the private key to `out` and prints the PKS block.
pub fn keygen(out: &Path, id: &str, force: bool) -> Result<()> {
    let key = ReaderKey::generate(id)?;
    key.write(out, force)
        .with_context(|| format!("writing the private key of {id}"))?;
    print!("{}", key.pks_block("aktif"));
    eprintln!(
        "wrote the private key of {id} to {} (readable by its owner only): install it in the card reader, never in a PKS file or a repository.\nAdd the [[sam]] table above to the Pengguna's PKS file (its metode_akses must list \"card_reader\"); set status = \"nonaktif\" there to deactivate the reader (art. 45).",
        out.display()
    );
    Ok(())
}
