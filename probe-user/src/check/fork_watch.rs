//! The kernel's process events connector (`CONFIG_PROC_EVENTS`, netlink): every fork on the
//! system as it happens, with the parent's and child's thread group ids. `--pid-tree` grows its
//! set of the command's descendants from these, which also covers processes too short-lived to
//! be looked up in /proc. Root only.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// A new process (threads are not reported: their child is in the parent's thread group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fork {
    pub parent_tgid: u32,
    pub child_tgid: u32,
}

// Message layout (include/uapi/linux/netlink.h, connector.h, cn_proc.h): a 16-byte nlmsghdr,
// a 20-byte cn_msg, then struct proc_event { u32 what; u32 cpu; u64 timestamp_ns; union }.
const NLMSG_HEADER: usize = 16;
const CN_MSG: usize = 20;
const EVENT_DATA: usize = 16;
/// proc_event.event_data.fork: parent_pid, parent_tgid, child_pid, child_tgid.
const FORK_PARENT_TGID: usize = 4;
const FORK_CHILD_TGID: usize = 12;

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// The forks in one datagram (which may hold several netlink messages).
pub fn parse_datagram(mut buf: &[u8], mut on_fork: impl FnMut(Fork)) {
    while buf.len() >= NLMSG_HEADER {
        let Some(len) = u32_at(buf, 0).map(|l| l as usize) else { return };
        if len < NLMSG_HEADER || len > buf.len() {
            return;
        }
        let event = NLMSG_HEADER + CN_MSG;
        let what = u32_at(buf, event);
        let data = event + EVENT_DATA;
        if what == Some(libc::PROC_EVENT_FORK)
            && let (Some(parent_tgid), Some(child_tgid)) =
                (u32_at(buf, data + FORK_PARENT_TGID), u32_at(buf, data + FORK_CHILD_TGID))
            && len >= data + FORK_CHILD_TGID + 4
            && parent_tgid != child_tgid
        {
            on_fork(Fork { parent_tgid, child_tgid });
        }
        // Messages are padded to 4 bytes.
        let next = (len + 3) & !3;
        buf = buf.get(next..).unwrap_or(&[]);
    }
}

/// A subscription to the process events connector.
pub struct ForkWatch {
    socket: OwnedFd,
    /// Times the socket's queue overflowed (forks were dropped).
    pub overflows: u64,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

impl ForkWatch {
    pub fn open() -> io::Result<ForkWatch> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let fd = check(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_CONNECTOR,
            )
        })?;
        // SAFETY: fd is a new descriptor nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // A large queue: forks between two drains (10 ms apart) must fit. Root may exceed
        // rmem_max with SO_RCVBUFFORCE; if that fails the default queue still works.
        let size: libc::c_int = 8 << 20;
        // SAFETY: a valid int option.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const size).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        // SAFETY: sockaddr_nl is plain data; zero is a valid start.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = libc::CN_IDX_PROC;
        // SAFETY: addr is a valid sockaddr_nl of the size given.
        check(unsafe { libc::bind(fd, (&raw const addr).cast(), size_of::<libc::sockaddr_nl>() as u32) })?;

        let mut msg = [0u8; NLMSG_HEADER + CN_MSG + 4];
        let total = msg.len() as u32;
        msg[0..4].copy_from_slice(&total.to_ne_bytes());
        msg[4..6].copy_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        msg[12..16].copy_from_slice(&std::process::id().to_ne_bytes());
        let cn = NLMSG_HEADER;
        msg[cn..cn + 4].copy_from_slice(&libc::CN_IDX_PROC.to_ne_bytes());
        msg[cn + 4..cn + 8].copy_from_slice(&libc::CN_VAL_PROC.to_ne_bytes());
        msg[cn + 16..cn + 18].copy_from_slice(&4u16.to_ne_bytes());
        msg[cn + CN_MSG..].copy_from_slice(&libc::PROC_CN_MCAST_LISTEN.to_ne_bytes());
        // SAFETY: msg is a valid buffer of the length given.
        let sent = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ForkWatch { socket, overflows: 0 })
    }

    /// Hands every fork queued so far to `on_fork`, without blocking.
    pub fn drain(&mut self, mut on_fork: impl FnMut(Fork)) {
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: buf is a valid buffer of the length given.
            let n =
                unsafe { libc::recv(self.socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // The queue overflowed: forks were dropped; what is queued after is fine.
                    Some(libc::ENOBUFS) => {
                        self.overflows += 1;
                        continue;
                    }
                    _ => return,
                }
            }
            parse_datagram(buf.get(..n as usize).unwrap_or(&[]), &mut on_fork);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fork_message(parent_tgid: u32, child_pid: u32, child_tgid: u32) -> Vec<u8> {
        let len = NLMSG_HEADER + CN_MSG + EVENT_DATA + 16;
        let mut m = vec![0u8; len];
        m[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        let ev = NLMSG_HEADER + CN_MSG;
        m[ev..ev + 4].copy_from_slice(&libc::PROC_EVENT_FORK.to_ne_bytes());
        let data = ev + EVENT_DATA;
        m[data..data + 4].copy_from_slice(&parent_tgid.to_ne_bytes());
        m[data + 4..data + 8].copy_from_slice(&parent_tgid.to_ne_bytes());
        m[data + 8..data + 12].copy_from_slice(&child_pid.to_ne_bytes());
        m[data + 12..data + 16].copy_from_slice(&child_tgid.to_ne_bytes());
        m
    }

    #[test]
    fn forks_are_read_from_each_message_of_a_datagram_and_threads_skipped() {
        let mut datagram = fork_message(100, 200, 200);
        datagram.extend(fork_message(100, 101, 100)); // a thread of 100
        let mut exec = fork_message(1, 2, 3);
        let ev = NLMSG_HEADER + CN_MSG;
        exec[ev..ev + 4].copy_from_slice(&libc::PROC_EVENT_EXEC.to_ne_bytes());
        datagram.extend(exec);
        datagram.extend(fork_message(200, 300, 300));
        datagram.extend([0u8; 7]); // a truncated tail is ignored
        let mut forks = Vec::new();
        parse_datagram(&datagram, |f| forks.push(f));
        assert_eq!(forks, [Fork { parent_tgid: 100, child_tgid: 200 }, Fork { parent_tgid: 200, child_tgid: 300 }]);
    }
}
