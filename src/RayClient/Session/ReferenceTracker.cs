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
    private readonly List<(WeakReference<ObjectRef> Ref, RayId Id, TrackToken Token)> _live = [];
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
            AddLocked(reference, id);
        }
    }

    private TrackToken? AddLocked(ObjectRef reference, RayId id)
    {
        if (_disposed)
        {
            return null;
        }

        if (reference.Tracking is { } existing)
        {
            return existing; // released explicitly before the id continuation got here
        }

        var token = new TrackToken();
        reference.Tracking = token;
        _counts[id] = _counts.TryGetValue(id, out var count) ? count + 1 : 1;
        _live.Add((new WeakReference<ObjectRef>(reference), id, token));
        return token;
    }

    /// <summary>
    /// <see cref="ObjectRef.DisposeAsync"/>: this instance stops counting at once, and when no other
    /// live instance names the id, the release is sent now (pipelined on the Datapath, so the server
    /// frees the object before anything sent later) rather than at the next sweep.
    /// </summary>
    public void ReleaseNow(ObjectRef reference, RayId id)
    {
        var release = false;
        lock (_lock)
        {
            if (AddLocked(reference, id) is not { Released: false } token)
            {
                return;
            }

            token.Released = true;
            release = Decrement(id);
        }

        if (release)
        {
            Send([id]);
        }
    }

    /// <summary>Drops one count of <paramref name="id"/>; true when it reached zero. Caller holds the lock.</summary>
    private bool Decrement(RayId id)
    {
        var count = _counts[id] - 1;
        if (count == 0)
        {
            _counts.Remove(id);
            return true;
        }

        _counts[id] = count;
        return false;
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
                if (entry.Token.Released)
                {
                    continue; // counted out when it was disposed
                }

                if (entry.Ref.TryGetTarget(out _))
                {
                    _live[kept++] = entry;
                    continue;
                }

                if (Decrement(entry.Id))
                {
                    (release ??= []).Add(entry.Id);
                }
            }

            _live.RemoveRange(kept, _live.Count - kept);
        }

        if (release is not null)
        {
            Send(release);
        }
    }

    private void Send(List<RayId> release)
    {
        if (!_session.Connection.IsUsable)
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
            _ = _session.Connection.SendAsync(new DataRequest { Release = request })
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

/// <summary>Shared by an <see cref="ObjectRef"/> and its tracker entry: whether it was released explicitly.</summary>
internal sealed class TrackToken
{
    public volatile bool Released;
}
