// Command ferretdb runs FerretDB 1.24 (a MongoDB-wire server) for the archive tests, through
// FerretDB's embeddable package.
//
// `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` (and @v1.24.0, tried too) builds
// a binary that panics at start ("Invalid build/version/version.txt file content. Please run
// `bin/task gen-version`"): the module download lacks the version file FerretDB's own builds
// generate first, and the check applies only when FerretDB is the main module. Embedded, the
// same server runs as is.
package main

import (
	"context"
	"flag"
	"log"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	handler := flag.String("handler", "sqlite", "backend: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite URI (a directory) for sqlite")
	postgresURL := flag.String("postgresql-url", "", "PostgreSQL URL for postgresql")
	flag.Parse()

	server, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Handler:       *handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *postgresURL,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}
