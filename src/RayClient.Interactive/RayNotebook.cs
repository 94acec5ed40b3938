using System.Collections.Concurrent;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.CSharp;
using Microsoft.DotNet.Interactive.Formatting;

namespace RayClient.Interactive;

/// <summary>
/// The kernel's Ray state: the <c>ray</c> session <c>#!ray connect</c> made, the embedded server
/// it started, and the running cell (worker output and state changes are shown in it, and its
/// interrupt cancels the waits of <see cref="RayNotebookExtensions"/>).
/// </summary>
public sealed class RayNotebook : IAsyncDisposable
{
    private static readonly TimeSpan s_serverStartTimeout = TimeSpan.FromSeconds(60);
    private readonly Kernel _kernel;
    private readonly ConcurrentQueue<(string Text, bool Error)> _pendingOutput = new();
    private readonly Lock _gate = new();
    private KernelInvocationContext? _cell;
    private EmbeddedServerProcess? _server;
    private IDisposable? _stateSubscription;
    private DisplayedValue? _stateDisplay;
    private long _lastOutput;

    internal RayNotebook(Kernel kernel) => _kernel = kernel;

    /// <summary>The notebook state of the kernel that loaded the extension last (null before it is loaded).</summary>
    public static RayNotebook? Current { get; internal set; }

    /// <summary>The session <c>#!ray connect</c> opened (also the kernel's <c>ray</c> variable); null when disconnected.</summary>
    public RaySession? Session { get; private set; }

    /// <summary>The address of the embedded server this kernel started, if it started one.</summary>
    public string? EmbeddedServerAddress => _server?.Address;

    /// <summary>Process id of the embedded server this kernel started, if any.</summary>
    public int? EmbeddedServerProcessId => _server?.ProcessId;

    /// <summary>Cancelled when the running cell is interrupted (none when no cell runs).</summary>
    public CancellationToken CellCancellationToken
    {
        get
        {
            var cell = Volatile.Read(ref _cell);
            return cell is { IsComplete: false } ? cell.CancellationToken : CancellationToken.None;
        }
    }

    internal IDisposable EnterCell(KernelInvocationContext context)
    {
        var previous = Interlocked.Exchange(ref _cell, context);
        while (_pendingOutput.TryDequeue(out var line))
        {
            RayKernelExtension.PublishOutput(context, line.Text, line.Error);
        }

        return new CellScope(this, context, previous);
    }

    /// <summary>
    /// Before a cell ends: worker output travels on its own stream and can trail the result that
    /// ended the cell's wait by a few milliseconds, so wait until output has been quiet for a
    /// moment (bounded), and it lands in the cell that started the work.
    /// </summary>
    internal async Task SettleOutputAsync()
    {
        if (Session is not { ConnectionState.Status: RayConnectionStatus.Connected or RayConnectionStatus.Reconnected })
        {
            return;
        }

        var time = TimeProvider.System;
        var start = time.GetTimestamp();
        while (time.GetElapsedTime(start) < s_settleMax)
        {
            await Task.Delay(s_settleQuiet / 3, time).ConfigureAwait(false);
            var last = Volatile.Read(ref _lastOutput);
            if (time.GetElapsedTime(start) >= s_settleQuiet && (last == 0 || time.GetElapsedTime(last) >= s_settleQuiet))
            {
                return;
            }
        }
    }

    private static readonly TimeSpan s_settleQuiet = TimeSpan.FromMilliseconds(150);
    private static readonly TimeSpan s_settleMax = TimeSpan.FromSeconds(1);

    internal async Task ConnectAsync(string? address, KernelInvocationContext context)
    {
        if (Session is { } existing && existing.ConnectionState.Status is not (RayConnectionStatus.Closed or RayConnectionStatus.Lost))
        {
            KernelInvocationContextExtensions.Display(context, $"Already connected to {existing.Address}; run #!ray disconnect first.", "text/plain");
            return;
        }

        await CloseAsync().ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(address))
        {
            _server = await EmbeddedServerProcess.StartAsync(s_serverStartTimeout, context.CancellationToken).ConfigureAwait(false);
            address = _server.Address;
            KernelInvocationContextExtensions.Display(context, $"Started the embedded Ray server at {address} (process {_server.ProcessId}).", "text/plain");
        }

        var session = await RaySession.ConnectAsync(
            new RaySessionOptions { Address = address, LogSink = OnLogLine },
            context.CancellationToken).ConfigureAwait(false);
        Session = session;
        var csharp = FindCSharpKernel();
        if (csharp is not null)
        {
            await csharp.SetValueAsync("ray", session, typeof(RaySession)).ConfigureAwait(false);
        }

        _stateDisplay = KernelInvocationContextExtensions.Display(context, session.ConnectionState);
        _stateSubscription = session.ConnectionStates.Subscribe(new StateObserver(this));
    }

    internal async Task StatusAsync(KernelInvocationContext context)
    {
        if (Session is not { } session)
        {
            KernelInvocationContextExtensions.Display(context, "Not connected: #!ray connect [ray://host:port].", "text/plain");
            return;
        }

        KernelInvocationContextExtensions.Display(context, session.ConnectionState);
        if (session.ConnectionState.Status is RayConnectionStatus.Connected or RayConnectionStatus.Reconnected)
        {
            KernelInvocationContextExtensions.Display(context, await RayClusterStatus.QueryAsync(session, context.CancellationToken).ConfigureAwait(false));
        }
    }

    internal async Task DisconnectAsync(KernelInvocationContext context)
    {
        var had = Session is not null;
        await CloseAsync().ConfigureAwait(false);
        KernelInvocationContextExtensions.Display(context, had ? "Disconnected." : "Not connected.", "text/plain");
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await CloseAsync().ConfigureAwait(false);

    private async Task CloseAsync()
    {
        _stateSubscription?.Dispose();
        _stateSubscription = null;
        if (Session is { } session)
        {
            Session = null;
            await session.DisposeAsync().ConfigureAwait(false);
        }

        if (_server is { } server)
        {
            _server = null;
            await server.DisposeAsync().ConfigureAwait(false);
        }
    }

    private CSharpKernel? FindCSharpKernel() => _kernel switch
    {
        CSharpKernel csharp => csharp,
        CompositeKernel composite => composite.ChildKernels.OfType<CSharpKernel>().FirstOrDefault(),
        _ => null,
    };

    private void OnLogLine(RayLogLine line)
    {
        var text = line.Message.EndsWith('\n') ? line.Message : line.Message + "\n";
        var error = line.Level == -2 || line.Level >= 30;
        var cell = Volatile.Read(ref _cell);
        Volatile.Write(ref _lastOutput, TimeProvider.System.GetTimestamp());
        if (cell is { IsComplete: false })
        {
            try
            {
                RayKernelExtension.PublishOutput(cell, text, error);
                return;
            }
            catch (ObjectDisposedException)
            {
            }
        }

        _pendingOutput.Enqueue((text, error)); // shown at the start of the next cell
    }

    private void OnStateChanged(RayConnectionState state)
    {
        try
        {
            _stateDisplay?.Update(state);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or InvalidOperationException)
        {
        }

        var cell = Volatile.Read(ref _cell);
        if (cell is { IsComplete: false } && state.Status != RayConnectionStatus.Connected)
        {
            try
            {
                RayKernelExtension.PublishOutput(cell, $"ray: {RayFormatters.Describe(state)}\n", state.Status == RayConnectionStatus.Lost);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private sealed class CellScope(RayNotebook owner, KernelInvocationContext context, KernelInvocationContext? previous) : IDisposable
    {
        public void Dispose() => Interlocked.CompareExchange(ref owner._cell, previous, context);
    }

    private sealed class StateObserver(RayNotebook owner) : IObserver<RayConnectionState>
    {
        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }

        public void OnNext(RayConnectionState value) => owner.OnStateChanged(value);
    }
}

/// <summary>What <c>#!ray status</c> shows: the nodes and the cluster's total and available resources.</summary>
/// <param name="Nodes">Every node.</param>
/// <param name="Total">Total resources.</param>
/// <param name="Available">Resources not in use.</param>
public sealed record RayClusterStatus(IReadOnlyList<RayNode> Nodes, IReadOnlyDictionary<string, double> Total, IReadOnlyDictionary<string, double> Available)
{
    /// <summary>Asks the cluster.</summary>
    public static async Task<RayClusterStatus> QueryAsync(RaySession session, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        var nodes = await session.GetNodesAsync(cancellationToken).ConfigureAwait(false);
        var total = await session.GetClusterResourcesAsync(cancellationToken).ConfigureAwait(false);
        var available = await session.GetAvailableResourcesAsync(cancellationToken).ConfigureAwait(false);
        return new RayClusterStatus(nodes, total, available);
    }
}

/// <summary>Progress of a cell's wait on many refs (what the progress display shows).</summary>
/// <param name="Done">Refs ready so far.</param>
/// <param name="Total">Refs awaited.</param>
public sealed record RayProgress(int Done, int Total);

/// <summary>Notebook-friendly waits: progress shown in the cell, and the cell's interrupt cancels them.</summary>
public static class RayNotebookExtensions
{
    /// <summary>
    /// Gets every value, in order, showing "done / total" in the running cell while they complete.
    /// Interrupting the cell cancels this wait (the session and the remote work go on).
    /// </summary>
    public static async Task<IReadOnlyList<T>> GetAllAsync<T>(this RaySession ray, IReadOnlyList<ObjectRef<T>> references, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ray);
        ArgumentNullException.ThrowIfNull(references);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, RayNotebook.Current?.CellCancellationToken ?? CancellationToken.None);
        var context = KernelInvocationContext.Current;
        var display = context is null ? null : KernelInvocationContextExtensions.Display(context, new RayProgress(0, references.Count));
        var done = 0;
        await foreach (var _ in ray.AsCompletedAsync(references, linked.Token).ConfigureAwait(false))
        {
            done++;
            display?.Update(new RayProgress(done, references.Count));
        }

        return await ray.GetAsync(references, cancellationToken: linked.Token).ConfigureAwait(false);
    }

    /// <summary>Gets the value; interrupting the running cell cancels the wait (not the session).</summary>
    public static Task<T> GetInCellAsync<T>(this ObjectRef<T> reference, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(reference);
        return reference.GetAsync(timeout, RayNotebook.Current?.CellCancellationToken ?? CancellationToken.None);
    }
}
