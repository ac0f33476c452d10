-- Argo CD health check for modelwerk.io/v1alpha1 Model (the registry entry).
--
--   status not written yet, or status.observedGeneration behind metadata.generation
--                                              -> Progressing ("Waiting for the operator ...")
--   phase Degraded, or condition Ready=False   -> Degraded (e.g. a declared version colliding
--                                                 with a registered one: someone must fix spec)
--   condition Ready=Unknown                    -> Progressing
--   phase Pending (no version registered)      -> Healthy. An empty registry is a valid state,
--                                                 not a fault: TrainingRuns fill it. Progressing
--                                                 would hold a sync wave until some run passes
--                                                 its evaluation gate, which may be never.
--   phase Ready                                -> Healthy, with the count, latest and aliases
--   any other phase                            -> Unknown
--
-- Only Lua 5.1 base, string and table functions: Argo CD runs this in gopher-lua.

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

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the Model"
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
if status.phase == "Degraded" or (ready ~= nil and ready.status == "False") then
  hs.status = "Degraded"
  hs.message = reasonMessage(ready, "Model is Degraded")
  return hs
end
if ready ~= nil and ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = reasonMessage(ready, "Model readiness is unknown")
  return hs
end

if status.phase == "Pending" then
  hs.status = "Healthy"
  hs.message = "No version registered yet: TrainingRuns or spec.versions fill the registry"
  return hs
end

if status.phase == "Ready" then
  local count = 0
  if status.versions ~= nil then
    count = #status.versions
  end
  local message = count .. " versions registered"
  if count == 1 then
    message = "1 version registered"
  end
  if status.latestVersion ~= nil then
    message = message .. ", latest " .. status.latestVersion
  end
  local names = {}
  for name, _ in pairs(status.aliases or {}) do
    table.insert(names, name)
  end
  if #names > 0 then
    table.sort(names)
    local parts = {}
    for _, name in ipairs(names) do
      table.insert(parts, name .. "=" .. status.aliases[name])
    end
    message = message .. " (" .. table.concat(parts, ", ") .. ")"
  end
  hs.status = "Healthy"
  hs.message = message
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown Model phase " .. tostring(status.phase)
return hs
