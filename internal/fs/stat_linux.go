package fs

import "golang.org/x/sys/unix"

func fromUnix(st *unix.Stat_t) Stat {
	return Stat{Mode: st.Mode, Ino: st.Ino, Dev: st.Dev, Nlink: uint64(st.Nlink), UID: st.Uid, GID: st.Gid, Size: st.Size,
		MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano(), Rdev: st.Rdev}
}
