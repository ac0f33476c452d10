-- Argo CD health check for modelwerk.io/v1alpha1 Deployment (serving a Model version).
-- Argo CD keys health checks by group and kind, so this never applies to apps/v1 Deployments.
--
--   status not written yet, or status.observedGeneration behind metadata.generation
--                                   -> Progressing ("Waiting for the operator ...")
--   phase Degraded                  -> Degraded (the version does not become ready, Seldon
--                                      failed, the Model or alias went away while serving)
--   condition CanaryAnalysis=False  -> Degraded: RolledBack (analysis breached a limit and
--                                      removed the canary), PreviouslyRejected (spec.canary
--                                      still names a rolled-back version), an unresolvable
--                                      canary, NoPrometheus. It stays Degraded until the spec
--                                      in Git changes. Exception: PrometheusUnavailable is
--                                      retried by the operator -> Progressing.
--   condition Guard=False           -> Degraded: Reverted (spec.guard measured a breach and
--                                      the previous version serves again), PreviouslyReverted
--                                      (the spec names a reverted version). Until Git changes.
--   condition Guard=Unknown         -> NoPrometheus (the operator has no Prometheus: the guard
--                                      never measures) -> Degraded; NoTraffic or
--                                      PrometheusUnavailable (retried) -> Healthy, with the
--                                      reason in the message: the guard is not measuring yet
--   phase Pending (nothing served yet): Ready=False NoDigest or InvalidSpec -> Degraded
--                                      (never fixes itself); else -> Progressing (e.g. the
--                                      alias is not set until a run registers a version)
--   phase Progressing               -> Progressing
--   phase Available, Ready=True     -> Healthy, unless a canary is stepping through its
--                                      analysis (spec.canary.analysis set, canary state
--                                      Progressing) -> Progressing until promoted or rolled
--                                      back. A canary without analysis keeps its traffic
--                                      share for good and is Healthy.
--   phase Available, Ready not True -> Progressing
--   any other phase                 -> Unknown
--
-- Only Lua 5.1 base, string and table functions: Argo CD runs this in gopher-lua.

local FINAL_PENDING_REASONS = {NoDigest = true, InvalidSpec = true}

local function condition(obj, conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function reasonMessage(c, fallback)
  if c == nil then
    return fallback
  end
  if c.reason ~= nil and c.message ~= nil then
    return c.reason .. ": " .. c.message
  end
  return c.message or c.reason or fallback
end

local hs = {}
local status = obj.status
local spec = obj.spec or {}

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the Deployment"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation ..
    " (observed " .. tostring(status.observedGeneration or "none") .. ")"
  return hs
end

local ready = condition(obj, "Ready")

if status.phase == "Degraded" then
  local degraded = condition(obj, "Degraded")
  hs.status = "Degraded"
  if degraded ~= nil and degraded.status == "True" then
    hs.message = reasonMessage(degraded, "Deployment is Degraded")
  else
    hs.message = reasonMessage(ready, "Deployment is Degraded")
  end
  return hs
end

local canaryAnalysis = condition(obj, "CanaryAnalysis")
if canaryAnalysis ~= nil and canaryAnalysis.status == "False" and canaryAnalysis.reason ~= "PrometheusUnavailable" then
  hs.status = "Degraded"
  hs.message = "Canary " .. reasonMessage(canaryAnalysis, "analysis failed")
  return hs
end

local guard = condition(obj, "Guard")
if guard ~= nil and (guard.status == "False" or (guard.status == "Unknown" and guard.reason == "NoPrometheus")) then
  hs.status = "Degraded"
  hs.message = "Guard " .. reasonMessage(guard, "reverted")
  return hs
end

if status.phase == "Pending" then
  if ready ~= nil and ready.reason ~= nil and FINAL_PENDING_REASONS[ready.reason] then
    hs.status = "Degraded"
    hs.message = reasonMessage(ready, "nothing can be served")
  else
    hs.status = "Progressing"
    hs.message = "Waiting for a version to serve: " .. reasonMessage(ready, "not resolved yet")
  end
  return hs
end

if status.phase == "Progressing" then
  local progressing = condition(obj, "Progressing")
  hs.status = "Progressing"
  if progressing ~= nil and progressing.status == "True" and progressing.message ~= nil then
    hs.message = progressing.message
  else
    hs.message = reasonMessage(ready, "Deployment is progressing")
  end
  return hs
end

if status.phase == "Available" then
  if ready == nil or ready.status ~= "True" then
    hs.status = "Progressing"
    hs.message = reasonMessage(ready, "waiting for the Ready condition")
    return hs
  end
  local canary = status.canary
  if canary ~= nil and canary.state == "Progressing" and spec.canary ~= nil and spec.canary.analysis ~= nil then
    hs.status = "Progressing"
    if canaryAnalysis ~= nil and canaryAnalysis.status == "False" then
      hs.message = "Canary analysis waiting: " .. reasonMessage(canaryAnalysis, "no measurement")
    else
      hs.message = "Canary analysis: version " .. tostring(canary.version) .. " at " ..
        tostring(canary.trafficPercent or 0) .. "% of traffic"
    end
    return hs
  end
  local message = "Serving version " .. tostring(status.currentVersion)
  if canary ~= nil and canary.state == "Progressing" and canary.version ~= nil then
    message = message .. "; canary version " .. canary.version .. " gets " ..
      tostring(canary.trafficPercent or 0) .. "% of traffic"
  end
  if status.guard ~= nil and status.guard.state == "Watching" then
    if guard ~= nil and guard.status == "Unknown" then
      message = message .. "; guard not measuring: " .. reasonMessage(guard, "no measurement")
    else
      message = message .. "; guarded until its window ends"
    end
  end
  hs.status = "Healthy"
  hs.message = message
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown Deployment phase " .. tostring(status.phase)
return hs
