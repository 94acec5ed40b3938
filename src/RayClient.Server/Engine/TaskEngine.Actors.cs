using RayClient.Server.Actors;
using RayClient.Server.Storage;

namespace RayClient.Server.Engine;

/// <summary>Actors: creation, method calls, lookup by name, kill.</summary>
internal sealed partial class TaskEngine
{
    /// <summary>
    /// Creates an actor for <paramref name="session"/> (from the Datapath or a job driver): checks
    /// that it can ever be placed, resolves its runtime env (merged onto the job's) and registers it.
    /// </summary>
    public ActorRecord CreateActor(ClientSession session, string className, ReadOnlyMemory<byte> classPickle, ReadOnlyMemory<byte> args, TaskOptionsReader options)
    {
        var demand = options.Resources(defaultCpus: 0); // Ray: actors hold no CPU while running unless asked
        if (Scheduler.CheckFeasible(demand) is { } infeasible)
        {
            throw new TicketException(ServerErrors.ValueError($"Cannot create actor {className}: {infeasible}"));
        }

        var held = RefScanner.FindHeld(session, args, out var topLevel);
        var environment = Task.FromResult(session.Environment);
        if (options.RuntimeEnv is { Count: > 0 } actorEnv)
        {
            environment = _environments.ResolveAsync(RuntimeEnvMerge.Merge(session.RuntimeEnv, actorEnv), CancellationToken.None);
        }

        var rayNamespace = options.Namespace ?? session.Namespace;
        var actor = Actors.Create(
            id => new ActorRecord
            {
                Id = id,
                ClassName = className,
                ClassPickle = classPickle,
                InitArgs = args,
                InitDependencies = topLevel,
                Held = held,
                Owner = session,
                Name = options.Name,
                Namespace = rayNamespace,
                Detached = options.Detached,
                MaxRestarts = options.MaxRestarts,
                MaxConcurrency = options.MaxConcurrency,
                MaxTaskRetries = options.MaxTaskRetries,
                Environment = environment,
                Resources = demand,
            },
            options.Name,
            rayNamespace,
            options.GetIfExists);
        ActorManager.Hold(actor, session);
        return actor;
    }

    /// <summary>
    /// Submits <c>actor.method.remote(...)</c> for <paramref name="session"/> (from the client, a
    /// job driver or Python code in a worker) and returns the call's result objects.
    /// </summary>
    /// <exception cref="TicketException">The server has no actor <paramref name="actorId"/>.</exception>
    public StoredObject[] CallActorMethod(ClientSession session, RayId actorId, string method, ReadOnlyMemory<byte> args, int numReturns)
    {
        if (!Actors.TryGet(actorId, out var actor))
        {
            throw new TicketException(ServerErrors.ValueError($"Can't run an actor the server doesn't have a handle for ({actorId.Hex})."));
        }

        var held = RefScanner.FindHeld(session, args, out var topLevel);
        var returns = CreateReturns(session, numReturns);
        Actors.Submit(actor, new ActorCall { Client = session, Method = method, Args = args, Returns = returns, Dependencies = topLevel, Held = held });
        return returns;
    }

    /// <summary>Ray's <c>ray.get_actor(name, namespace)</c>: the live actor of that name, now also held by <paramref name="session"/>.</summary>
    /// <exception cref="TicketException">No live actor has that name in that namespace.</exception>
    public ActorRecord GetNamedActor(ClientSession session, string name, string rayNamespace)
    {
        var actor = Actors.FindNamed(name, rayNamespace)
            ?? throw new TicketException(ServerErrors.ValueError($"Failed to look up actor with name '{name}'. This could because 1. You are trying to look up a named actor you didn't create. 2. The named actor died. 3. You did not use a namespace matching the namespace of the actor."));
        ActorManager.Hold(actor, session);
        return actor;
    }

    /// <summary>
    /// Ray's <c>ray.kill(actor, no_restart)</c>. False for an unknown actor: the Datapath ignores
    /// that (Ray's error is lost in the stream's status), the unary Terminate reports it.
    /// </summary>
    public bool KillActor(RayId actorId, bool noRestart)
    {
        if (!Actors.TryGet(actorId, out var actor))
        {
            return false;
        }

        Actors.Kill(actor, noRestart);
        return true;
    }

    /// <summary>The named actors as Ray's <c>list_named_actors</c> JSON.</summary>
    public string ListNamedActorsJson(string rayNamespace, bool allNamespaces) => Actors.ListNamedJson(rayNamespace, allNamespaces);
}
