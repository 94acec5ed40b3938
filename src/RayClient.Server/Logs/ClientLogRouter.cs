using System.Collections.Concurrent;
using RayClient.Server.Workers;

namespace RayClient.Server.Logs;

/// <summary>
/// Routes what workers print to the client whose work printed it: the client's log streams
/// (<c>LogStreamerService</c>) and job drivers subscribe per client id.
/// </summary>
internal sealed class ClientLogRouter
{
    private readonly ConcurrentDictionary<string, ClientLog> _logs = new(StringComparer.Ordinal);
    private readonly Func<string, bool> _isKnownClient;

    /// <param name="isKnownClient">Whether a client id names a session the server still keeps (lines of other clients are dropped).</param>
    public ClientLogRouter(Func<string, bool> isKnownClient) => _isKnownClient = isKnownClient;

    /// <summary>
    /// Delivers what a client's tasks print. Lines printed while no log stream is attached (before
    /// it opens, during a reconnect) are kept, up to a bound, and delivered when one attaches; Ray
    /// drops them (spec §12.10).
    /// </summary>
    public IDisposable Subscribe(string clientId, Action<string, int> sink)
    {
        var log = _logs.GetOrAdd(clientId, _ => new ClientLog());
        List<(string, int)> backlog;
        lock (log)
        {
            log.Sinks.Add(sink);
            backlog = [.. log.Backlog];
            log.Backlog.Clear();
        }

        foreach (var (text, level) in backlog)
        {
            sink(text, level);
        }

        return new Unsubscriber(() =>
        {
            lock (log)
            {
                log.Sinks.Remove(sink);
            }
        });
    }

    /// <summary>The client's session ended: its kept lines go.</summary>
    public void Forget(string clientId) => _logs.TryRemove(clientId, out _);

    /// <summary>A line a worker printed: <paramref name="level"/> is Ray's -1 (stdout) or -2 (stderr).</summary>
    public void OnWorkerOutput(WorkerProcess worker, string line, int level)
    {
        // The line may arrive after the task's result: attribute it to the worker's last client.
        var clientId = worker.LastClientId;
        if (clientId is null || !_isKnownClient(clientId))
        {
            return;
        }

        var log = _logs.GetOrAdd(clientId, _ => new ClientLog());
        var text = $"({worker.CurrentTaskName ?? "worker"} pid={worker.Pid}) {line}\n";
        Action<string, int>[] sinks;
        lock (log)
        {
            if (log.Sinks.Count == 0)
            {
                if (log.Backlog.Count >= 10_000)
                {
                    log.Backlog.Dequeue();
                }

                log.Backlog.Enqueue((text, level));
                return;
            }

            sinks = [.. log.Sinks];
        }

        foreach (var sink in sinks)
        {
            sink(text, level);
        }
    }

    private sealed class ClientLog
    {
        public List<Action<string, int>> Sinks { get; } = [];

        public Queue<(string Text, int Level)> Backlog { get; } = new();
    }

    private sealed class Unsubscriber(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }
}
