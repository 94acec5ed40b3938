using Microsoft.Extensions.Time.Testing;

namespace RayClient.Tests.Session.Infrastructure;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that knows its live timers, so a test can advance virtual
/// time exactly to the next due timer once the code under test has created it, instead of
/// guessing how far to jump (Polly's delays and timeouts, the connection's own timeouts).
/// </summary>
internal sealed class VirtualClock : FakeTimeProvider
{
    public static readonly DateTimeOffset Epoch = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly object _gate = new();
    private readonly List<TrackedTimer> _timers = [];
    private TaskCompletionSource _changed = NewSignal();

    public VirtualClock()
        : base(Epoch)
    {
    }

    /// <summary>Virtual time elapsed since <see cref="Epoch"/>.</summary>
    public TimeSpan Elapsed => GetUtcNow() - Epoch;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var tracked = new TrackedTimer(this);
        lock (_gate)
        {
            _timers.Add(tracked);
        }

        tracked.Schedule(dueTime, period);
        tracked.Inner = base.CreateTimer(
            s =>
            {
                tracked.OnFired();
                callback(s);
            },
            state,
            dueTime,
            period);
        Signal();
        return tracked;
    }

    /// <summary>
    /// Waits (up to 10 s of real time) until a live timer is due within <paramref name="window"/>
    /// of now, then advances virtual time to the earliest such due time.
    /// </summary>
    /// <param name="window">How far ahead a timer may be due.</param>
    /// <param name="stopWhen">Stop waiting (and return zero) once this task has completed.</param>
    /// <returns>How far time moved.</returns>
    public async Task<TimeSpan> AdvanceToNextTimerWithinAsync(TimeSpan window, Task? stopWhen = null)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            Task changed;
            DateTimeOffset? next = null;
            lock (_gate)
            {
                changed = _changed.Task;
                var limit = GetUtcNow() + window;
                foreach (var timer in _timers)
                {
                    if (timer.Due is { } due && due <= limit && (next is null || due < next))
                    {
                        next = due;
                    }
                }
            }

            if (next is { } target)
            {
                var step = target - GetUtcNow();
                if (step > TimeSpan.Zero)
                {
                    Advance(step);
                }

                return step > TimeSpan.Zero ? step : TimeSpan.Zero;
            }

            if (stopWhen is not null)
            {
                if (await Task.WhenAny(changed, stopWhen).WaitAsync(deadline.Token) == stopWhen)
                {
                    return TimeSpan.Zero;
                }

                continue;
            }

            await changed.WaitAsync(deadline.Token);
        }
    }

    private void Signal()
    {
        TaskCompletionSource previous;
        lock (_gate)
        {
            previous = _changed;
            _changed = NewSignal();
        }

        previous.TrySetResult();
    }

    private void Remove(TrackedTimer timer)
    {
        lock (_gate)
        {
            _timers.Remove(timer);
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private sealed class TrackedTimer(VirtualClock clock) : ITimer
    {
        private TimeSpan _period = Timeout.InfiniteTimeSpan;

        public ITimer? Inner { get; set; }

        /// <summary>When the timer fires next, or null when it will not.</summary>
        public DateTimeOffset? Due { get; private set; }

        public void Schedule(TimeSpan dueTime, TimeSpan period)
        {
            _period = period;
            Due = dueTime == Timeout.InfiniteTimeSpan ? null : clock.GetUtcNow() + dueTime;
        }

        public void OnFired() =>
            Due = _period == Timeout.InfiniteTimeSpan || _period == TimeSpan.Zero ? null : clock.GetUtcNow() + _period;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            Schedule(dueTime, period);
            var changed = Inner?.Change(dueTime, period) ?? false;
            clock.Signal();
            return changed;
        }

        public void Dispose()
        {
            Due = null;
            Inner?.Dispose();
            clock.Remove(this);
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}
