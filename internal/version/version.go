// Package version is where Tidemark's version is written down, once: the
// CLI's `version` command and --version print it, and every snapshot
// record carries Program.
package version

// Number is Tidemark's release version.
const Number = "0.1.0"

// Program names the program and its version, as snapshot records carry it
// in their "program" field.
const Program = "tidemark " + Number
