using RayClient.Server.Protocol;

namespace RayClient.Server;

/// <summary>
/// Test hooks of the embedded server (Ray's test middleman, spec §11.1): cut every Datapath
/// stream, drop responses after executing. Real faults, not mocks: cutting
/// aborts the server's HTTP/2 streams. Internal: not part of the shipped package; tests and benchmarks reach it through InternalsVisibleTo.
/// </summary>
internal sealed class ServerFaults
{
    private readonly Lock _lock = new();
    private readonly HashSet<Action> _streams = [];

    /// <summary>Drops matching responses after the request was executed (the client must replay). Internal: its argument is a protocol type.</summary>
    internal Func<DataResponse, bool>? DropResponse { get; set; }

    /// <summary>Aborts every open Datapath stream (the clients see a broken stream).</summary>
    public int CutAllStreams()
    {
        Action[] streams;
        lock (_lock)
        {
            streams = [.. _streams];
        }

        foreach (var stream in streams)
        {
            try
            {
                stream();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        return streams.Length;
    }

    internal void RegisterStream(Action abort)
    {
        lock (_lock)
        {
            _streams.Add(abort);
        }
    }

    internal void UnregisterStream(Action abort)
    {
        lock (_lock)
        {
            _streams.Remove(abort);
        }
    }

    internal bool ShouldDropResponse(DataResponse response) => DropResponse?.Invoke(response) ?? false;

}
