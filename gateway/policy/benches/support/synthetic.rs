//! Synthetic PKS files for the policy bench and the `load_phases` example: agreement `i`
//! has ten User IDs, `u{k}`, each on its own 10.x.y.z address.

/// A real argon2id hash (of no password anyone uses); loading never checks it.
pub const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3ZRqpb8Z+dLwDBTqW3nkCw0ZqXYjz6Rqi4AbH5l3eXM";

pub const USERS_PER_PKS: usize = 10;

/// The text of agreement `i`.
pub fn pks_text(i: usize) -> String {
    let mut text = format!(
        "nomor = \"{i}/BENCH\"\npengguna = \"p{i}\"\nnama_pengguna = \"Lembaga {i}\"\njenis_pengguna = \"opd\"\ntingkat = \"kabupaten_kota\"\ntujuan = \"bench\"\nelemen_data = [\"NIK\", \"NO_KK\", \"NAMA_LGKP\", \"TGL_LHR\", \"ALAMAT_SEKARANG\"]\nmetode_akses = [\"web_service\"]\nkunci_akses = [\"NIK\"]\nmulai = 2025-01-01\nsampai = 2030-12-31\nstatus = \"aktif\"\n"
    );
    for u in 0..USERS_PER_PKS {
        let k = i * USERS_PER_PKS + u + 1;
        text += &format!(
            "\n[[user]]\nid = \"u{k}\"\npassword_hash = \"{HASH}\"\nip_lan = [\"10.{}.{}.{}\"]\nkuota_harian = 1000\nstatus = \"aktif\"\n",
            k >> 16 & 255,
            k >> 8 & 255,
            k & 255
        );
    }
    text
}
