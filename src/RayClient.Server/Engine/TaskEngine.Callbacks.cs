using System.Globalization;
using System.Text;
using RayClient.Server.Workers;

namespace RayClient.Server.Engine;

/// <summary>Callbacks of Python code running in a worker: nested tasks, actor calls, gets.</summary>
internal sealed partial class TaskEngine
{
    /// <summary>
    /// User code in a worker calling back: <c>f.remote()</c> and <c>actor.method.remote()</c>
    /// submit work for the worker's client (who then holds the results), <c>ray.get(ref)</c> waits
    /// for an object.
    /// </summary>
    private async Task OnWorkerCallbackAsync(WorkerProcess worker, byte kind, ulong seq, IReadOnlyList<byte[]> blobs)
    {
        try
        {
            if (worker.LastClientId is not { } clientId || _findSession(clientId) is not { } session)
            {
                await worker.RespondAsync(seq, false, ServerErrors.ValueError("The job of this worker has ended.")).ConfigureAwait(false);
                return;
            }

            if (kind == WorkerProcess.KindGet)
            {
                await GetForWorkerAsync(worker, session, seq, blobs[0]).ConfigureAwait(false);
                return;
            }

            if (kind == WorkerProcess.KindSubmitTask)
            {
                // f.remote() in a task: key, function pickle, pickled (args, kwargs), pickled options.
                var key = Encoding.UTF8.GetString(blobs[0]);
                var spec = PrepareTask(
                    session,
                    key,
                    "py:" + key,
                    blobs[1],
                    blobs[2],
                    TaskOptionsReader.Read(Google.Protobuf.UnsafeByteOperations.UnsafeWrap(blobs[3])),
                    parent: worker.CurrentTask);
                try
                {
                    await worker.RespondAsync(seq, true, ConcatenateIds(spec.Returns)).ConfigureAwait(false);
                }
                finally
                {
                    Submit(spec); // accepted: runs (and releases what it holds) even if the parent died meanwhile
                }

                return;
            }

            // KindSubmitMethod: actor id, method name, pickled (args, kwargs), num_returns
            var numReturns = int.Parse(Encoding.ASCII.GetString(blobs[3]), CultureInfo.InvariantCulture);
            var returns = CallActorMethod(session, new RayId(blobs[0]), Encoding.UTF8.GetString(blobs[1]), blobs[2], numReturns);
            await worker.RespondAsync(seq, true, ConcatenateIds(returns)).ConfigureAwait(false);
        }
        catch (TicketException ex)
        {
            await worker.RespondAsync(seq, false, ex.ErrorPickle).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or WorkerCrashedException)
        {
            // The worker went away; nobody waits for the answer.
        }
    }

    /// <summary>
    /// <c>ray.get(ref)</c> in a worker: answers when the object is ready. A task that waits lends
    /// its resources meanwhile, so the children it waits for can run.
    /// </summary>
    private async Task GetForWorkerAsync(WorkerProcess worker, ClientSession session, ulong seq, byte[] id)
    {
        if (!session.TryGetObject(new RayId(id), out var entry))
        {
            await worker.RespondAsync(seq, false, ServerErrors.ValueError($"ObjectRef {Convert.ToHexStringLower(id)} is not found for client {session.ClientId}.")).ConfigureAwait(false);
            return;
        }

        entry.AddReference();
        var blocked = entry.IsReady ? null : worker.CurrentTask;
        if (blocked is not null)
        {
            Scheduler.LendResources(blocked); // a task waiting on its children must not starve them
        }

        entry.OnReady(() =>
        {
            if (blocked is not null)
            {
                Scheduler.ReclaimResources(blocked);
            }

            _ = worker.RespondAsync(seq, !entry.IsError, entry.Data).ContinueWith(_ => _store.Release(entry), TaskScheduler.Default);
        });
    }
}
