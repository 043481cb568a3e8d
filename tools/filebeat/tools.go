//go:build tools

// Package tools pins Filebeat's main package, so `go mod tidy` keeps what it needs.
package tools

import _ "github.com/elastic/beats/v7/filebeat"
