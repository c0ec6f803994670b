package firmastack

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The conversion of a context deadline into the C ABI's timeout_ms.
func TestTimeoutFromContext(t *testing.T) {
	ms := func(ctx context.Context) (uint64, error) {
		v, err := timeoutFrom(ctx)
		return uint64(v), err
	}
	if got, err := ms(context.Background()); got != 0 || err != nil {
		t.Errorf("no deadline: %d, %v; want 0 (the core's default)", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if got, err := ms(ctx); got == 0 || got > 300 || err != nil {
		t.Errorf("300 ms deadline: %d, %v; want 1..300", got, err)
	}
	far, cancel2 := context.WithTimeout(context.Background(), 1000*24*time.Hour)
	defer cancel2()
	if got, err := ms(far); got != maxTimeoutMS || err != nil {
		t.Errorf("far deadline: %d, %v; want clamped to the core's maximum %d", got, err, maxTimeoutMS)
	}
	past, cancel4 := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel4()
	if _, err := ms(past); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("past deadline: %v; want DeadlineExceeded", err)
	}
}

// The header compiled against, the linked library and this binding agree on
// the ABI version.
func TestABIVersions(t *testing.T) {
	if headerABIVersion != BindingABIVersion || ABIVersion() != BindingABIVersion {
		t.Fatalf("ABI versions: header %d, library %d, binding %d",
			headerABIVersion, ABIVersion(), BindingABIVersion)
	}
}

// The plain Go constants are the header's numbers.
func TestTimeoutConstantsAreTheHeaders(t *testing.T) {
	if DefaultTimeout != time.Duration(defaultTimeoutMS)*time.Millisecond ||
		MaxTimeout != time.Duration(maxTimeoutMS)*time.Millisecond {
		t.Fatalf("DefaultTimeout %v, MaxTimeout %v; the header says %d ms and %d ms",
			DefaultTimeout, MaxTimeout, defaultTimeoutMS, maxTimeoutMS)
	}
}
