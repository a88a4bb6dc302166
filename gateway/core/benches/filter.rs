//! Filtering one DWH answer to the PKS elements: the work every allowed lookup pays.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gerbang_core::{ElementSet, Shape, Vocabulary, filter_answer};

const ANSWER: &str = r#"{"content":[{"NIK":3372011203900001,"NO_KK":3372010101200002,"NAMA_LGKP":"BUDI CONTOH","KAB_NAME":"SURAKARTA","AGAMA":"ISLAM","NAMA_LGKP_AYAH":"AYAH CONTOH","NO_RW":3,"KEC_NAME":"LAWEYAN","JENIS_PKRJN":"KARYAWAN SWASTA","NO_RT":2,"NO_KEL":1001,"ALAMAT":"JL. CONTOH NO. 1","NO_KEC":1,"TMPT_LHR":"SURAKARTA","PDDK_AKH":"SLTA/SEDERAJAT","STATUS_KAWIN":"KAWIN","NO_PROP":33,"NAMA_LGKP_IBU":"IBU CONTOH","PROP_NAME":"JAWA TENGAH","NO_KAB":72,"KEL_NAME":"PAJANG","JENIS_KLMIN":"LAKI-LAKI","TGL_LHR":"1990-03-12","GOL_DARAH":"O","KODE_POS":"57146","PNYDNG_CACAT":"-","STAT_HBKEL":"KEPALA KELUARGA"}],"lastPage":true,"numberOfElements":1,"sort":null,"totalElements":1,"firstPage":true,"number":0,"size":1}"#;

fn filter(c: &mut Criterion) {
    let vocab = Vocabulary::embedded();
    let mut allowed = ElementSet::EMPTY;
    for name in ["NIK", "NO_KK", "NAMA_LGKP", "TGL_LHR", "ALAMAT", "KAB_NAME"] {
        allowed.insert(vocab.id(name).unwrap());
    }
    assert_eq!(
        filter_answer(ANSWER.as_bytes(), &vocab, allowed, Shape::Values)
            .unwrap()
            .released
            .len(),
        6
    );
    c.bench_function("filter/one_record_6_of_27", |b| {
        b.iter(|| filter_answer(black_box(ANSWER.as_bytes()), &vocab, allowed, Shape::Values))
    });
}

criterion_group!(benches, filter);
criterion_main!(benches);
