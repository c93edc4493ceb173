// Package config reads the configuration file of `tidemark run`: a TOML
// file with a [server] table (the JSON API's address and token, the state
// and cache directories, how many jobs may run at once) and one
// [jobs.NAME] table per backup job (repository, password by reference,
// paths, excludes, trigger timings, the forced-full-scan policy, retention,
// verify budget, alerts, hooks).
//
// Parse decodes and validates in one step and returns every problem it
// finds at once, each naming the file, the line and the key, so that a
// user fixing a file does not have to run the check once per mistake.
// Unknown keys are errors too: a misspelt "min_intervall" silently
// ignored would leave a job on the default.
//
// Secrets are never in the file: a job names where its password is (a
// file, a command that prints it, or an environment variable), and an
// inline "password" key is refused with a message saying so. The API token
// is likewise read from a file.
package config
