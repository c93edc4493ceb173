package app

import (
	"runtime"
	"runtime/debug"

	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/version"
)

// VersionInfo describes this build; its JSON is what `version --json`
// prints.
type VersionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	OS        string `json:"go_os"`
	Arch      string `json:"go_arch"`
	// RepositoryFormat is the repository format version this build
	// writes (and the only one it opens).
	RepositoryFormat int `json:"repository_format"`
	// Revision and Modified are the source's commit and whether it had
	// uncommitted changes, when the build recorded them.
	Revision string `json:"vcs_revision,omitempty"`
	Modified bool   `json:"vcs_modified,omitempty"`
}

// Version describes this build.
func Version() VersionInfo {
	v := VersionInfo{Version: version.Number, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		RepositoryFormat: repo.Version}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}
