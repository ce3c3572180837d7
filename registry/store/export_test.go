package store

// SetExamMediaRegion makes ExamMedia leave room for n rows a stream, so
// that a test reaches both its paths (the rows in place, a stream that
// outgrows its room), and returns the function that restores it.
func SetExamMediaRegion(n int) (restore func()) {
	old := examMediaRegion
	examMediaRegion = func(Window) int { return n }
	return func() { examMediaRegion = old }
}
