using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using RayClient.Serialization;
using RayClient.Server.Engine;
using RayClient.Server.Storage;
using RayClient.Server.Workers;
using RayClient.Session;

namespace RayClient.Server.Jobs;

/// <summary>
/// The link between a Python job driver (the embedded <c>ray</c> module, ray_driver.py) and the
/// engine: a loopback socket speaking the framed protocol the workers use for their callbacks
/// (u32 length | u8 kind | u64 seq | u32-prefixed blobs; answers carry a status blob first).
/// A driver proves which job it belongs to with that job's secret token, then gets a session of
/// the job (the job's runtime env), as a Ray driver gets its job. It only translates: tasks,
/// actors and objects go through the same <see cref="TaskEngine"/> calls as the Datapath's.
/// </summary>
internal sealed partial class DriverLink : IAsyncDisposable
{
    private const byte KindHello = 40;
    private const byte KindPut = 41;
    private const byte KindGet = 42;
    private const byte KindWait = 43;
    private const byte KindSubmitTask = 44;
    private const byte KindCreateActor = 45;
    private const byte KindSubmitMethod = 46;
    private const byte KindRelease = 47;
    private const byte KindCluster = 48;
    private const byte KindKillActor = 49;
    private const byte KindGetActor = 50;
    private const byte KindCancel = 51;
    private const byte KindResult = 60;
    private static readonly byte[] StatusOk = [0];
    private static readonly byte[] StatusError = [1];
    private const byte KindLog = 61;
    private const int MaxFrame = int.MaxValue - 64;

    private readonly ServerState _state;
    private readonly ILogger _logger;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, Registration> _byToken = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Connection, byte> _connections = new();
    private readonly Task _acceptLoop;

    public DriverLink(ServerState state)
    {
        _state = state;
        _logger = state.Logger;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Address = $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public string Address { get; }

    /// <summary>Makes a token for a job's driver processes; returns it.</summary>
    public string Register(string submissionId, WorkerEnvironment environment, JsonObject? runtimeEnv, JobManager manager)
    {
        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        _byToken[token] = new Registration(submissionId, environment, runtimeEnv, manager);
        return token;
    }

    /// <summary>Ends the sessions of a job's drivers (its objects, tasks and non-detached actors go with them).</summary>
    public void CloseJob(string submissionId)
    {
        foreach (var (token, registration) in _byToken)
        {
            if (registration.SubmissionId == submissionId)
            {
                _byToken.TryRemove(token, out _);
            }
        }

        foreach (var connection in _connections.Keys)
        {
            if (connection.SubmissionId == submissionId)
            {
                connection.Close();
            }
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            client.NoDelay = true;
            var connection = new Connection(this, client);
            _connections[connection] = 0;
            _ = connection.RunAsync(_stop.Token).ContinueWith(t => _connections.TryRemove(connection, out var _), TaskScheduler.Default);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        foreach (var connection in _connections.Keys)
        {
            connection.Close();
        }

        try
        {
            await _acceptLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }

    private sealed record Registration(string SubmissionId, WorkerEnvironment Environment, JsonObject? RuntimeEnv, JobManager Manager);

    /// <summary>One driver process.</summary>
    private sealed class Connection(DriverLink link, TcpClient client)
    {
        private readonly SemaphoreSlim _writeLock = new(1, 1);
        private readonly NetworkStream _stream = client.GetStream();
        private ClientSession? _session;
        private IDisposable? _logs;

        public string? SubmissionId { get; private set; }

        public void Close()
        {
            client.Close();
        }

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            var header = new byte[13];
            try
            {
                while (true)
                {
                    await _stream.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
                    var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
                    if (length < 9 || length > MaxFrame)
                    {
                        return;
                    }

                    var kind = header[4];
                    var seq = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(5));
                    var body = new byte[length - 9];
                    await _stream.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
                    var blobs = Split(body);
                    if (_session is null && kind != KindHello)
                    {
                        return; // nothing before the handshake
                    }

                    // Gets and waits block: they answer later, the connection reads on.
                    _ = HandleAsync(kind, seq, blobs, cancellationToken);
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or SocketException or EndOfStreamException)
            {
            }
            finally
            {
                client.Close();
                _logs?.Dispose();
                if (_session is not null)
                {
                    link._state.CloseSession(_session);
                }
            }
        }

        private static List<byte[]> Split(byte[] body)
        {
            var blobs = new List<byte[]>();
            var pos = 0;
            while (pos + 4 <= body.Length)
            {
                var n = (int)BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(pos));
                pos += 4;
                blobs.Add(body.AsSpan(pos, n).ToArray());
                pos += n;
            }

            return blobs;
        }

        private async Task HandleAsync(byte kind, ulong seq, List<byte[]> blobs, CancellationToken cancellationToken)
        {
            try
            {
                var state = link._state;
                if (kind == KindHello)
                {
                    await HelloAsync(seq, blobs).ConfigureAwait(false);
                    return;
                }

                var session = _session!;
                switch (kind)
                {
                    case KindPut:
                    {
                        // The Datapath's put: the store's capacity check, Ray's ObjectStoreFullError
                        // raised by ray.put when it does not fit, and what is stored already stays.
                        var entry = state.Store.TryPut(session, blobs[0], pooled: null, out var error);
                        await (entry is null
                            ? RespondAsync(seq, false, error!)
                            : RespondAsync(seq, true, entry.Id.Bytes)).ConfigureAwait(false);
                        return;
                    }

                    case KindGet:
                        await GetAsync(session, seq, blobs, cancellationToken).ConfigureAwait(false);
                        return;
                    case KindWait:
                        await WaitAsync(session, seq, blobs, cancellationToken).ConfigureAwait(false);
                        return;
                    case KindSubmitTask:
                    {
                        // key, function pickle, pickled (args, kwargs), pickled options
                        var name = Encoding.UTF8.GetString(blobs[0]);
                        var spec = state.Engine.PrepareTask(session, name, "drv:" + name + ":" + Convert.ToHexStringLower(SHA1.HashData(blobs[1])), blobs[1], blobs[2],
                            TaskOptionsReader.Read(Google.Protobuf.UnsafeByteOperations.UnsafeWrap(blobs[3])), parent: null);
                        try
                        {
                            await RespondAsync(seq, true, TaskEngine.ConcatenateIds(spec.Returns)).ConfigureAwait(false);
                        }
                        finally
                        {
                            state.Engine.Submit(spec);
                        }

                        return;
                    }

                    case KindCreateActor:
                    {
                        var actor = state.Engine.CreateActor(session, Encoding.UTF8.GetString(blobs[0]), blobs[1], blobs[2],
                            TaskOptionsReader.Read(Google.Protobuf.UnsafeByteOperations.UnsafeWrap(blobs[3])));
                        await RespondAsync(seq, true, actor.Id.Bytes).ConfigureAwait(false);
                        return;
                    }

                    case KindSubmitMethod:
                    {
                        var numReturns = int.Parse(Encoding.ASCII.GetString(blobs[3]), CultureInfo.InvariantCulture);
                        var returns = state.Engine.CallActorMethod(session, new RayId(blobs[0]), Encoding.UTF8.GetString(blobs[1]), blobs[2], numReturns);
                        await RespondAsync(seq, true, TaskEngine.ConcatenateIds(returns)).ConfigureAwait(false);
                        return;
                    }

                    case KindRelease:
                        // The objects whose last ObjectRef the driver dropped, batched (ray_driver.py
                        // _Releases); what a task or another object still holds stays.
                        foreach (var id in blobs)
                        {
                            state.Engine.Release(session, new RayId(id));
                        }

                        await RespondAsync(seq, true).ConfigureAwait(false);
                        return;
                    case KindCluster:
                        await RespondAsync(seq, true, Encoding.UTF8.GetBytes(state.ClusterInfoJson(Encoding.UTF8.GetString(blobs[0]), session))).ConfigureAwait(false);
                        return;
                    case KindKillActor:
                        state.Engine.KillActor(new RayId(blobs[0]), blobs[1].Length > 0 && blobs[1][0] == (byte)'1');

                        await RespondAsync(seq, true).ConfigureAwait(false);
                        return;
                    case KindGetActor:
                    {
                        var name = Encoding.UTF8.GetString(blobs[0]);
                        var ns = blobs[1].Length == 0 ? session.Namespace : Encoding.UTF8.GetString(blobs[1]);
                        var found = state.Engine.GetNamedActor(session, name, ns);
                        await RespondAsync(seq, true, found.Id.Bytes).ConfigureAwait(false);
                        return;
                    }

                    case KindCancel:
                        state.Engine.Cancel(session, new RayId(blobs[0]), blobs[1][0] == (byte)'1', blobs[2][0] == (byte)'1');

                        await RespondAsync(seq, true).ConfigureAwait(false);
                        return;
                    default:
                        await RespondAsync(seq, false, ServerErrors.Pickle("builtins", "NotImplementedError", $"Unknown driver request {kind}.")).ConfigureAwait(false);
                        return;
                }
            }
            catch (TicketException ex)
            {
                await SafeRespondAsync(seq, false, ex.ErrorPickle).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException or OperationCanceledException)
            {
            }
            catch (Exception ex)
            {
                LogDriverRequestFailed(link._logger, kind, ex);
                await SafeRespondAsync(seq, false, ServerErrors.Pickle("builtins", "RuntimeError", $"The embedded server failed the request: {ex.Message}")).ConfigureAwait(false);
            }
        }

        private async Task HelloAsync(ulong seq, List<byte[]> blobs)
        {
            var token = Encoding.UTF8.GetString(blobs[0]);
            if (!link._byToken.TryGetValue(token, out var registration))
            {
                await RespondAsync(seq, false, ServerErrors.Pickle("builtins", "ConnectionError", "This driver's job token is not known to the embedded server (the job has ended, or the server was restarted).")).ConfigureAwait(false);
                Close();
                return;
            }

            var state = link._state;

            // ray.init's namespace and runtime env (already merged with the job's by the driver, as
            // Ray's init merges them), and the local packages it uploads for that runtime env.
            string? rayNamespace = null;
            var logToDriver = true;
            var runtimeEnv = registration.RuntimeEnv;
            var environment = registration.Environment;
            if (blobs.Count > 2 && JsonNode.Parse(blobs[2]) is JsonObject config)
            {
                rayNamespace = config["namespace"] is JsonValue ns ? (string?)ns : null;
                logToDriver = config["log_to_driver"] is not JsonValue forward || (bool)forward;
                if (config["runtime_env"] is JsonObject merged)
                {
                    for (var i = 3; i + 1 < blobs.Count; i += 2)
                    {
                        state.Kv.Put(blobs[i], blobs[i + 1], overwrite: true, null);
                    }

                    try
                    {
                        environment = await state.Environments.ResolveAsync(JobManager.ToPlain(merged), CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        await RespondAsync(seq, false, ServerErrors.Pickle("ray.exceptions", "RuntimeEnvSetupError", $"Failed to set up the runtime env given to ray.init: {ex.Message}")).ConfigureAwait(false);
                        return;
                    }

                    runtimeEnv = (JsonObject)merged.DeepClone();
                }
            }

            var session = state.GetOrCreateSession("driver-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)));
            session.Initialize(string.IsNullOrEmpty(rayNamespace) ? $"anonymous-{Guid.NewGuid():N}" : rayNamespace, JobManager.ToPlain(runtimeEnv), runtimeEnv?.ToJsonString() ?? "{}", environment);
            _session = session;
            SubmissionId = registration.SubmissionId;

            // What the job's tasks print goes to the driver's stdout (so into the job's log), as
            // Ray's log_to_driver does, unless ray.init(log_to_driver=False).
            if (logToDriver)
            {
                _logs = state.Logs.Subscribe(session.ClientId, (text, level) => { _ = SendLogAsync(text); });
            }
            var jobId = Convert.ToHexStringLower(session.JobId);
            var pid = int.TryParse(Encoding.ASCII.GetString(blobs[1]), NumberStyles.Integer, CultureInfo.InvariantCulture, out var p) ? p : 0;
            registration.Manager.OnDriverConnected(registration.SubmissionId, jobId, pid);
            var info = new JsonObject
            {
                ["job_id"] = jobId,
                ["namespace"] = session.Namespace,
                ["node_id"] = state.NodeId,
                ["submission_id"] = registration.SubmissionId,
                ["runtime_env"] = runtimeEnv?.DeepClone() ?? new JsonObject(),
                ["client_id"] = session.ClientId,
            };
            await RespondAsync(seq, true, Encoding.UTF8.GetBytes(info.ToJsonString())).ConfigureAwait(false);
        }

        /// <summary>blobs: timeout seconds ("" = none), then ids. Answers every value, or the first error.</summary>
        private async Task GetAsync(ClientSession session, ulong seq, List<byte[]> blobs, CancellationToken cancellationToken)
        {
            var entries = new List<StoredObject>(blobs.Count - 1);
            foreach (var id in blobs.Skip(1))
            {
                if (!session.TryGetObject(new RayId(id), out var entry))
                {
                    await RespondAsync(seq, false, ServerErrors.ValueError($"ObjectRef {Convert.ToHexStringLower(id)} is not known to this driver.")).ConfigureAwait(false);
                    return;
                }

                entries.Add(entry);
            }

            var ready = Task.WhenAll(entries.Select(e => e.Ready));
            if (TimeoutOf(blobs[0]) is { } timeout)
            {
                try
                {
                    await ready.WaitAsync(timeout, link._state.Options.TimeProvider, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    await RespondAsync(seq, false, ServerErrors.GetTimeout($"Get timed out: some object(s) not ready after {Encoding.ASCII.GetString(blobs[0])} s.")).ConfigureAwait(false);
                    return;
                }
            }
            else
            {
                await ready.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            if (entries.FirstOrDefault(e => e.IsError) is { } failed)
            {
                await RespondAsync(seq, false, failed.Data).ConfigureAwait(false);
                return;
            }

            // Refs inside the values become the driver's own (Ray's borrowing): it may drop the
            // ref it got them from, and releases these when its last ObjectRef to them goes.
            foreach (var entry in entries)
            {
                foreach (var inner in entry.Contained ?? [])
                {
                    session.Hold(inner);
                }
            }

            await RespondAsync(seq, true, [.. entries.Select(e => e.Data)]).ConfigureAwait(false);
        }

        /// <summary>blobs: num_returns, timeout ("" = none), then ids. Answers the ready ids (in request order).</summary>
        private async Task WaitAsync(ClientSession session, ulong seq, List<byte[]> blobs, CancellationToken cancellationToken)
        {
            var entries = new List<StoredObject>();
            foreach (var id in blobs.Skip(2))
            {
                if (!session.TryGetObject(new RayId(id), out var entry))
                {
                    await RespondAsync(seq, false, ServerErrors.ValueError($"ObjectRef {Convert.ToHexStringLower(id)} is not known to this driver.")).ConfigureAwait(false);
                    return;
                }

                entries.Add(entry);
            }

            var wanted = Math.Clamp(int.Parse(Encoding.ASCII.GetString(blobs[0]), CultureInfo.InvariantCulture), 0, entries.Count);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            if (TimeoutOf(blobs[1]) is { } timeout)
            {
                deadline.CancelAfter(timeout);
            }

            var pending = entries.Where(e => !e.IsReady).Select(e => e.Ready).ToList();
            while (entries.Count(e => e.IsReady) < wanted && pending.Count > 0)
            {
                try
                {
                    await Task.WhenAny(pending).WaitAsync(deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    break;
                }

                pending.RemoveAll(t => t.IsCompleted);
            }

            var ready = entries.Where(e => e.IsReady).Take(wanted).ToList();
            await RespondAsync(seq, true, TaskEngine.ConcatenateIds([.. ready])).ConfigureAwait(false);
        }

        private static TimeSpan? TimeoutOf(byte[] blob) =>
            blob.Length > 0 && double.TryParse(Encoding.ASCII.GetString(blob), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0
                ? TimeSpan.FromSeconds(seconds)
                : null;

        private async Task SendLogAsync(string text)
        {
            try
            {
                await Frames.WriteAsync(_stream, _writeLock, KindLog, 0, [Encoding.UTF8.GetBytes(text)], CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
            {
            }
        }

        private async Task SafeRespondAsync(ulong seq, bool ok, params ReadOnlyMemory<byte>[] payload)
        {
            try
            {
                await RespondAsync(seq, ok, payload).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
            {
            }
        }

        /// <summary>Answers request <paramref name="seq"/>: a status blob (0 ok, 1 error), then the payload blobs.</summary>
        private Task RespondAsync(ulong seq, bool ok, params ReadOnlyMemory<byte>[] payload)
        {
            var blobs = new ReadOnlyMemory<byte>[payload.Length + 1];
            blobs[0] = ok ? StatusOk : StatusError;
            payload.CopyTo(blobs, 1);
            return Frames.WriteAsync(_stream, _writeLock, KindResult, seq, blobs, CancellationToken.None);
        }
    }

    [LoggerMessage(EventId = ServerEventIds.DriverRequestFailed, EventName = nameof(ServerEventIds.DriverRequestFailed), Level = LogLevel.Error, Message = "A job driver's request of kind {Kind} failed inside the server.")]
    private static partial void LogDriverRequestFailed(ILogger logger, byte kind, Exception exception);
}
