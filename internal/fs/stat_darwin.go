package fs

import "golang.org/x/sys/unix"

// fromUnix converts darwin's stat, whose dev_t is a signed 32-bit value
// and whose mode and link count are 16 bits wide. Device numbers are taken
// as unsigned so that they compare equal however they were obtained.
func fromUnix(st *unix.Stat_t) Stat {
	return Stat{Mode: uint32(st.Mode), Ino: st.Ino, Dev: uint64(uint32(st.Dev)), Nlink: uint64(st.Nlink), UID: st.Uid, GID: st.Gid,
		Size: st.Size, MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano(), Rdev: uint64(uint32(st.Rdev))}
}
