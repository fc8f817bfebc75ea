//! random_get fills 32 bytes; two calls differ and neither is all zeros.
//! A zero-length request succeeds.
fn fill(buf: &mut [u8]) -> u16 {
    // SAFETY: the buffer is `buf`, alive and of the length passed.
    unsafe { p1::raw::random_get(buf.as_mut_ptr(), buf.len()) }
}

fn main() {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    println!("first call errno={}", fill(&mut a));
    println!("second call errno={}", fill(&mut b));
    println!("a all zero: {}", a.iter().all(|&x| x == 0));
    println!("b all zero: {}", b.iter().all(|&x| x == 0));
    println!("a != b: {}", a != b);
    println!("empty request errno={}", fill(&mut []));
    // A larger buffer: 4096 bytes should take many distinct byte values.
    let mut big = vec![0u8; 4096];
    println!("4096-byte call errno={}", fill(&mut big));
    let mut seen = [false; 256];
    for &x in &big {
        seen[x as usize] = true;
    }
    println!("distinct byte values > 200: {}", seen.iter().filter(|&&s| s).count() > 200);
}
