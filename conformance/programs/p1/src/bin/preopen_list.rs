//! Walks fds from 3 with fd_prestat_get until EBADF and prints each
//! preopened directory's name: with a `root` there is exactly one, `/`.
use p1::raw;

fn main() {
    let mut fd = 3;
    loop {
        let mut prestat = raw::Prestat { tag: 0, name_len: 0 };
        // SAFETY: the out-pointer is to a local that outlives the call.
        let errno = unsafe { raw::fd_prestat_get(fd, &mut prestat) };
        if errno == raw::EBADF {
            break;
        }
        assert_eq!(errno, 0, "fd_prestat_get({fd}) errno");
        let mut name = vec![0u8; prestat.name_len];
        // SAFETY: the buffer is `name`, alive and of the length passed.
        let errno = unsafe { raw::fd_prestat_dir_name(fd, name.as_mut_ptr(), name.len()) };
        assert_eq!(errno, 0, "fd_prestat_dir_name({fd}) errno");
        // Some runtimes used to include a trailing NUL; drop it if present.
        while name.last() == Some(&0) {
            name.pop();
        }
        println!("preopen tag={} name={}", prestat.tag, String::from_utf8_lossy(&name));
        fd += 1;
    }
    println!("preopens={}", fd - 3);
}
