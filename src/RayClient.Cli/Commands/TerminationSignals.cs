using System.Runtime.InteropServices;

namespace RayClient.Cli.Commands;

/// <summary>
/// SIGINT (Ctrl+C) and SIGTERM cancel <see cref="Token"/> instead of ending the process, so a command
/// can finish cleanly: <c>start</c> stops its server and deletes its work dir, <c>job logs --follow</c>
/// says the job keeps running. System.CommandLine's own handling is off (it would force the exit).
/// </summary>
internal sealed class TerminationSignals : IDisposable
{
    private readonly CancellationTokenSource _cancel;
    private readonly PosixSignalRegistration _sigint;
    private readonly PosixSignalRegistration _sigterm;

    public TerminationSignals(CancellationToken cancellationToken)
    {
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
    }

    /// <summary>Cancelled by a signal or by the command's own token.</summary>
    public CancellationToken Token => _cancel.Token;

    public void Dispose()
    {
        _sigint.Dispose();
        _sigterm.Dispose();
        _cancel.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        try
        {
            _cancel.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The command has finished; the signal has nothing left to stop.
        }
    }
}
