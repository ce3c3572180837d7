// Package testenv starts the real dependencies that integration tests run
// against: a private PostgreSQL cluster, a MinIO server and a Kafka-protocol
// broker (kfake in-process, or a real cluster named by NOKSTREAM_TEST_KAFKA).
// Each test gets its own database, bucket and broker or topics, so tests run in
// parallel and leave nothing behind.
package testenv
