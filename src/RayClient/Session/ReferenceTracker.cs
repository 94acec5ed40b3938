using Ray.Rpc;

namespace RayClient.Session;

/// <summary>
/// Releases server-side objects that the program no longer holds, as Ray's client does from its
/// destructors (spec §5.5) but without finalizers: every <see cref="ObjectRef"/> with a known id is
/// tracked through a weak reference; a periodic sweep counts the collected ones per id and sends
/// one batched <c>ReleaseRequest</c> for ids whose count reached zero.
/// </summary>
internal sealed class ReferenceTracker : IDisposable
{
    private readonly RaySession _session;
    private readonly Dictionary<RayId, int> _counts = [];
    private readonly List<(WeakReference<ObjectRef> Ref, RayId Id)> _live = [];
    private readonly object _lock = new();
    private readonly ITimer _timer;
    private bool _disposed;

    public ReferenceTracker(RaySession session, TimeProvider time)
    {
        _session = session;
        _timer = time.CreateTimer(_ => Sweep(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    public int TrackedIds
    {
        get
        {
            lock (_lock)
            {
                return _counts.Count;
            }
        }
    }

    /// <summary>Tracks <paramref name="reference"/> once its id is known.</summary>
    public void Track(ObjectRef reference)
    {
        if (reference.IdTask.IsCompletedSuccessfully)
        {
            Add(reference, reference.IdTask.Result);
            return;
        }

        reference.IdTask.ContinueWith(
            static (task, state) =>
            {
                var (tracker, target) = ((ReferenceTracker, ObjectRef))state!;
                if (task.IsCompletedSuccessfully)
                {
                    tracker.Add(target, task.Result);
                }
            },
            (this, reference),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private void Add(ObjectRef reference, RayId id)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _counts[id] = _counts.TryGetValue(id, out var count) ? count + 1 : 1;
            _live.Add((new WeakReference<ObjectRef>(reference), id));
        }
    }

    /// <summary>Finds collected refs and releases ids no live ref points to.</summary>
    public void Sweep()
    {
        List<RayId>? release = null;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            var kept = 0;
            for (var i = 0; i < _live.Count; i++)
            {
                var entry = _live[i];
                if (entry.Ref.TryGetTarget(out _))
                {
                    _live[kept++] = entry;
                    continue;
                }

                var count = _counts[entry.Id] - 1;
                if (count == 0)
                {
                    _counts.Remove(entry.Id);
                    (release ??= []).Add(entry.Id);
                }
                else
                {
                    _counts[entry.Id] = count;
                }
            }

            _live.RemoveRange(kept, _live.Count - kept);
        }

        if (release is null || _session.DataChannel.Fatal is not null)
        {
            return;
        }

        var request = new ReleaseRequest();
        foreach (var id in release)
        {
            request.Ids.Add(Google.Protobuf.UnsafeByteOperations.UnsafeWrap(id.Bytes));
        }

        try
        {
            _ = _session.DataChannel.SendAsync(new DataRequest { Release = request })
                .ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or RayException)
        {
            // The session ended: the server drops everything at cleanup.
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _live.Clear();
            _counts.Clear();
        }

        _timer.Dispose();
    }
}
