package sftp

// dropConnection closes the current connection as a network failure
// would; tests use it to check that the next call reconnects.
func (b *Backend) dropConnection() {
	b.lock <- struct{}{}
	defer func() { <-b.lock }()
	if b.cur != nil {
		b.cur.ssh.Close()
	}
}
