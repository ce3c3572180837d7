package testenv

import (
	"os/exec"
	"runtime"
	"syscall"
)

// ChildSupervisor is the function a goroutine runs for each child Spawn
// started, for goleak's ignore lists.
const ChildSupervisor = "github.com/nokstream/nokstream/internal/testenv.superviseChild"

// Spawn starts cmd so that the kernel kills it (SIGKILL, unless
// cmd.SysProcAttr names another Pdeathsig) when this process dies, however
// it dies, and returns a channel that receives how it exited.
//
// Pdeathsig is sent when the thread that started the child ends, not the
// process (prctl(2) PR_SET_PDEATHSIG; https://go.dev/issue/27505), and Go
// retires threads: a child started from an ordinary goroutine can be killed
// in the middle of a test, with nothing in its log (a `nokstream all` of an
// e2e test vanished that way on a fresh clone). Spawn starts it from a
// goroutine locked to its thread for the child's whole life.
func Spawn(cmd *exec.Cmd) (<-chan error, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go superviseChild(cmd, started, exited)
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// superviseChild starts cmd and waits for it on a goroutine that keeps its
// OS thread until the child has exited (no UnlockOSThread: the thread then
// ends with the goroutine, when the signal has no one left to kill).
func superviseChild(cmd *exec.Cmd, started, exited chan<- error) {
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	exited <- cmd.Wait()
}
